"""The grammar of the single values in a project file: a port forward, a link,
an fqdn, a nameserver, a volume, a cgroup setting.

Each function takes the value's text and returns the value, or raises
``yamlnodes.Invalid`` with what is wrong and what to do; the place in the
file is added by ``locker.projectfile``. Whatever passes here is safe to put
into a command line, ``/etc/hosts`` or an LXC config line: no whitespace
where a name is expected, no control characters anywhere.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address
from string import Template

from locker.names import NAME_MAX, is_valid_name
from locker.errors import Invalid
from locker.model import PROTOCOLS
from locker.project import CONTROL, CgroupSetting, LinkSpec, PortSpec, VolumeSpec

DNS_WORDS = ("$bridge", "$copy")
VOLUME_VARIABLES = ("project", "name", "fqdn")
NAME_RULE = (f"a letter followed by letters, digits and hyphens, not ending in a hyphen, "
             f"at most {NAME_MAX} characters (it becomes part of interface names, rule "
             "comments and hostnames)")

#: An LXC container's name for ``clone``; never taken for an option.
LXC_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
#: A template's name and its argument keys (``--KEY VALUE``).
TEMPLATE_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
#: The values of ``download``: dist, release, arch, variant.
DOWNLOAD_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_DIGITS = re.compile(r"[0-9]+")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
LOCALHOST = IPv4Address("127.0.0.1")
_PORT_FORMAT = ("write [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO], for example 8080:80, "
                "or a range START-END:START-END, for example 8000-8010:9000-9010")


def parse_port(text: str) -> PortSpec:
    """``[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]``, each port or a range
    ``START-END`` (both sides ranges of the same length); the protocol is
    case-insensitive, HOST_IP 0.0.0.0 means every address (None), and
    HOST_IP ``localhost`` is 127.0.0.1 (reachable from the host itself only).
    An IPv6 HOST_IP is in brackets: ``[2001:db8::1]:8080:80`` (whether the
    project has IPv6 is ``locker.projectfile``'s to check)."""
    body, slash, proto = text.strip().partition("/")
    protocol = proto.lower() if slash else "tcp"
    if protocol not in PROTOCOLS:
        raise Invalid(f'protocol "{proto}" is not supported; use tcp or udp')
    host_ip: IPv4Address | IPv6Address | None = None
    if body.startswith("["):
        inside, bracket, body = body[1:].partition("]")
        if not bracket or not body.startswith(":"):
            raise Invalid("expected [IPV6]:HOST_PORT:CONTAINER_PORT, for example "
                          "[2001:db8::1]:8080:80")
        host_ip, body = _host_ip6(inside), body[1:]
        if body.count(":") != 1:
            raise Invalid("expected a host and a container port after [IPV6]:, for "
                          "example [2001:db8::1]:8080:80")
    elif "[" in body or "]" in body or body.count(":") > 2:
        raise Invalid("an IPv6 HOST_IP goes in brackets, like [2001:db8::1]:8080:80; "
                      f"otherwise {_PORT_FORMAT}")
    parts = body.split(":")
    if len(parts) not in (2, 3):
        raise Invalid(f"expected a host and a container port; {_PORT_FORMAT}")
    if len(parts) == 3:
        host_ip = _host_ip(parts[0])
    host, host_count = _ports(parts[-2], "HOST_PORT")
    container, container_count = _ports(parts[-1], "CONTAINER_PORT")
    if host_count != container_count:
        raise Invalid(f'HOST_PORT "{parts[-2]}" and CONTAINER_PORT "{parts[-1]}" differ '
                      f"in length ({_length(host_count)} and {_length(container_count)}); "
                      "give ranges of the same length on both sides, for example "
                      "8000-8010:9000-9010")
    return PortSpec(host_port=host, container_port=container, protocol=protocol,
                    host_ip=host_ip, count=host_count)


def _length(count: int) -> str:
    return "1 port" if count == 1 else f"{count} ports"


def _ports(text: str, what: str) -> tuple[int, int]:
    """The first port and the number of ports of ``PORT`` or ``START-END``."""
    start, dash, end = text.partition("-")
    if not _DIGITS.fullmatch(start) or (dash and not _DIGITS.fullmatch(end)):
        raise Invalid(f'{what} "{text}" is not a number or a range of numbers; {_PORT_FORMAT}')
    first, last = int(start), int(end) if dash else int(start)
    if not dash:
        return first, 1  # its range is PortSpec's to check
    for port in (first, last):
        if not 1 <= port <= 65535:
            raise Invalid(f'{what} "{text}": port {port} is out of range; '
                          "use a port from 1 to 65535")
    if last < first:
        raise Invalid(f'{what} "{text}" is an inverted range (it ends before it starts); '
                      f"write it as {last}-{first}")
    return first, last - first + 1


def _host_ip(text: str) -> IPv4Address | None:
    if text.lower() == "localhost":
        return LOCALHOST
    try:
        address = IPv4Address(text)
    except ValueError:
        raise Invalid(f'HOST_IP "{text}" is not an IPv4 address; give one like '
                      "192.0.2.10, or leave it out to forward on every address") from None
    return None if address == IPv4Address(0) else address


def _host_ip6(text: str) -> IPv6Address:
    try:
        address = IPv6Address(text)
    except ValueError:
        raise Invalid(f'HOST_IP "[{text}]" is not an IPv6 address; give one like '
                      "[2001:db8::1]") from None
    if address == IPv6Address(0):
        raise Invalid('HOST_IP "[::]" means every address; leave HOST_IP out to forward on '
                      "every address of both families")
    if address.is_loopback:
        raise Invalid('HOST_IP "[::1]" would reach nothing: Linux does not route IPv6 '
                      "loopback traffic into a bridge (there is no route_localnet for IPv6); "
                      "use 127.0.0.1, or a global address of the host")
    if address.ipv4_mapped or address.scope_id:
        raise Invalid(f'HOST_IP "[{text}]" is not a plain IPv6 address; give a global or '
                      "unique local address of the host, like [2001:db8::1]")
    return address


def parse_link(text: str) -> LinkSpec:
    """``NAME[:ALIAS]``: NAME a container name, ALIAS a host name for
    ``/etc/hosts``. Whether NAME exists is checked by the caller."""
    name, colon, alias = text.strip().partition(":")
    if not is_valid_name(name):
        raise Invalid(f'"{name}" is not a container name: a container name is {NAME_RULE}; '
                      "write NAME[:ALIAS]")
    if colon and (problem := dns_name_problem(alias)):
        raise Invalid(f'alias "{alias}" {problem}; write NAME[:ALIAS]')
    return LinkSpec(name=name, alias=alias if colon else None)


def dns_name_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS name (labels of letters, digits and inner
    hyphens, 1 to 63 characters each, at most 253 in all), or None."""
    if not name:
        return "is empty"
    if len(name) > 253:
        return f"is {len(name)} characters long; a DNS name has at most 253"
    for label in name.split("."):
        if not _LABEL.fullmatch(label):
            shown = f'label "{label}"' if label else "an empty label"
            return (f"is not a valid DNS name ({shown}): use labels of letters, digits and "
                    "hyphens (not first or last), 1 to 63 characters, separated by dots")
    return None


def check_fqdn(text: str) -> str:
    if problem := dns_name_problem(text):
        raise Invalid(f"{problem}; give a name like web.example.net")
    return text


def parse_nameserver(text: str) -> str:
    """An IPv4 address (normalised) or one of ``$bridge``, ``$copy``."""
    if text in DNS_WORDS:
        return text
    if ":" in text:
        raise Invalid("IPv6 nameservers are not supported; give an IPv4 address, "
                      "$bridge or $copy")
    try:
        return str(IPv4Address(text))
    except ValueError:
        raise Invalid("not a nameserver; give an IPv4 address, $bridge (the bridge "
                      "address) or $copy (the host's nameservers)") from None


def split_volume(text: str) -> tuple[str, str]:
    """``HOST_DIR:CONTAINER_DIR`` before ``$`` variables are replaced."""
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        raise Invalid("expected HOST_DIR:CONTAINER_DIR with exactly one colon "
                      "(paths with colons and mount options are not supported)")
    return parts[0], parts[1]


def substitute_volume(host: str, container: str, variables: dict[str, str]) -> VolumeSpec:
    """Replace ``$project``, ``$name``, ``$fqdn`` (``$$`` is a ``$``) and
    check that both paths are absolute and plain. ``variables`` lacks
    ``fqdn`` when the container has none."""
    paths = []
    for what, raw in (("HOST_DIR", host), ("CONTAINER_DIR", container)):
        try:
            path = Template(raw).substitute(variables)
        except KeyError as missing:
            variable = missing.args[0]
            if variable == "fqdn":
                raise Invalid("$fqdn is used but the container has no fqdn; set fqdn, "
                              "or use $name") from None
            raise Invalid(f"unknown variable ${variable} in {what}; use $project, $name "
                          "or $fqdn (${name} before letters, $$ for a dollar sign)") from None
        except ValueError:
            raise Invalid(f"a lone $ in {what}; write $$ for a dollar sign") from None
        paths.append(path)
    return VolumeSpec(paths[0], paths[1])


def parse_cgroup(text: str) -> CgroupSetting:
    """``key=value``: a controller key like ``memory.max`` and a value on
    one line (it goes into the container's config as ``lxc.cgroup*.KEY``)."""
    key, equals, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not value:
        raise Invalid("expected key=value, for example memory.max=200M")
    return CgroupSetting(key, value)


def check_lxc_name(text: str) -> str:
    """An existing LXC container's name for ``clone``."""
    if not LXC_NAME.fullmatch(text):
        raise Invalid("not an LXC container name (letters, digits, _, - and ., not "
                      "starting with - or .); give a container of this project or an "
                      "existing LXC container's name")
    return text


def check_template_word(text: str) -> str:
    """A template's name, or the key of one of its arguments."""
    if not TEMPLATE_WORD.fullmatch(text):
        raise Invalid("expected a plain word (letters, digits, hyphens, underscores; "
                      "a letter or digit first)")
    return text


def check_template_value(text: str) -> str:
    """The value of a template argument: anything on one line. It follows
    ``--`` on lxc-create's command line, so only the template reads it."""
    if CONTROL.search(text):
        raise Invalid("the value holds control characters; give it on one line")
    return text


def check_download_word(text: str) -> str:
    """One of ``download``'s values: dist, release, arch or variant."""
    if not DOWNLOAD_WORD.fullmatch(text):
        raise Invalid("expected a plain word (letters, digits, dots, hyphens, underscores; "
                      "a letter or digit first)")
    return text
