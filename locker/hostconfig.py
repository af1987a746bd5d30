"""Load the host configuration file into a ``HostConfig``.

The file is ``/etc/locker/locker.yaml``, or the file named by the
``LOCKER_CONFIG`` environment variable. It may set ``firewall`` and ``link``
(backend names), ``lxcpath``, ``state_dir`` (see ``locker.state``) and
``subnets`` (the pool project subnets are taken from, see ``locker.subnets``)::

    firewall: nftables
    link: netlink
    lxcpath: /var/lib/lxc
    state_dir: /var/lib/locker
    subnets: 10.200.0.0/16
    dns_forwarder: true        # dnsmasq on each project's bridge (false: none)
    isolated: false            # default of the projects' isolated: key
    ipv6: false                # default of the projects' ipv6: key
    ipv6_prefix: fd00:1234:5678::/48   # the host's ULA /48 (default: state dir's host-id)
    ipv6_nat: true             # false: the projects' /64s are routed, not masqueraded
    backends:                  # settings a backend declares (its SETTINGS)
      iptables: {lock_timeout: 30}

A missing file at the default path is an empty configuration; a missing file
named by ``LOCKER_CONFIG`` is an error, since someone asked for it. An empty
``LOCKER_CONFIG`` counts as unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from locker import ipv6
from locker.errors import ConfigError
from locker.project import HostConfig, Setting
from locker.subnets import pool_problem
from locker.yamlnodes import (CONTROL, Invalid, Problems, entries, is_null, known, line_of,
                              read_yaml, text)

DEFAULT_PATH = Path("/etc/locker/locker.yaml")
ENVIRONMENT_VARIABLE = "LOCKER_CONFIG"
KEYS = ("firewall", "link", "lxcpath", "state_dir", "subnets", "backends", "dns_forwarder",
        "isolated", "ipv6", "ipv6_prefix", "ipv6_nat")
_BACKEND = re.compile(r"[a-z][a-z0-9_-]*")


def host_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The host file's path: ``$LOCKER_CONFIG`` if set, else the default."""
    return Path(environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_PATH)


def load_host_config(environ: Mapping[str, str] = os.environ) -> HostConfig:
    """Read and validate the host file; raises ``ConfigError`` naming the
    file and listing every problem in it."""
    path = host_config_path(environ)
    problems = Problems(str(path))
    try:
        root = read_yaml(path, problems)
    except FileNotFoundError:
        if path == DEFAULT_PATH and not environ.get(ENVIRONMENT_VARIABLE):
            return HostConfig()
        raise ConfigError(f"{path}: no such host configuration file (named by "
                          f"{ENVIRONMENT_VARIABLE}); create it, or unset "
                          f"{ENVIRONMENT_VARIABLE}.") from None
    values: dict[str, object] = {}
    for entry in known(entries(root, "", problems) if root is not None else [], KEYS, problems):
        if is_null(entry.node):
            continue
        if entry.key == "backends":
            values["backends"] = _backend_settings(entry, path, problems)
            continue
        raw = text(entry.node, entry.path, problems)
        if raw is None:
            continue
        try:
            values[entry.key] = _check(entry.key, raw)
        except Invalid as error:
            problems.add(entry.node, entry.path, str(error), value=raw)
    problems.raise_if_any()
    return HostConfig(path=path, **values)


def _backend_settings(entry, path: Path, problems: Problems) -> dict[str, dict[str, Setting]]:
    """``backends: {NAME: {SETTING: VALUE}}``: each value kept as written
    with its place, for the backend to check (``locker.plugins.load``)."""
    settings: dict[str, dict[str, Setting]] = {}
    for backend in entries(entry.node, entry.path, problems):
        if not _BACKEND.fullmatch(backend.key):
            problems.add(backend.key_node, backend.path, "not a backend name; run "
                         "`locker backends` to see the installed ones")
            continue
        own = settings.setdefault(backend.key, {})
        for setting in entries(backend.node, backend.path, problems):
            raw = text(setting.node, setting.path, problems)
            if raw is not None:
                own[setting.key] = Setting(raw, f"{path}:{line_of(setting.node)}: "
                                                f"{setting.path}")
    return settings


def _check(key: str, raw: str) -> str | IPv4Network | IPv6Network | bool:
    if key == "subnets":
        return _pool(raw)
    if key == "ipv6_prefix":
        return ipv6.parse_prefix(raw)
    if key == "ipv6":
        if raw.lower() not in ("true", "false"):
            raise Invalid("not true or false; true gives every project an IPv6 /64 unless "
                          "its project file says ipv6: false")
        return raw.lower() == "true"
    if key == "ipv6_nat":
        if raw.lower() not in ("true", "false"):
            raise Invalid("not true or false; false routes the projects' IPv6 /64s without "
                          "masquerade (route them to this host), true masquerades them")
        return raw.lower() == "true"
    if key == "dns_forwarder":
        if raw.lower() not in ("true", "false"):
            raise Invalid("not true or false; false turns the projects' DNS forwarder off")
        return raw.lower() == "true"
    if key == "isolated":
        if raw.lower() not in ("true", "false"):
            raise Invalid("not true or false; true keeps every project's containers from "
                          "the host's addresses but their gateway, unless its project file "
                          "says isolated: false")
        return raw.lower() == "true"
    if key in ("lxcpath", "state_dir"):
        if not raw.startswith("/") or CONTROL.search(raw):
            example = "the directory the containers live in, like /var/lib/lxc" \
                if key == "lxcpath" else "the directory of Locker's host state, like /var/lib/locker"
            raise Invalid(f"not an absolute path; give {example}")
        return raw
    if not _BACKEND.fullmatch(raw):
        raise Invalid(f"not a backend name (lower-case letters, digits, - and _); "
                      f"run `locker backends` to see the installed {key} backends")
    return raw


def _pool(raw: str) -> IPv4Network:
    try:
        pool = IPv4Network(raw, strict=False)
    except ValueError:
        raise Invalid("not an IPv4 network; give the pool to take project subnets from "
                      "as ADDRESS/PREFIX, like 10.200.0.0/16") from None
    if "/" not in raw:
        raise Invalid(f"no prefix length; give the pool as ADDRESS/PREFIX, like {raw}/16")
    if str(pool) != raw.strip():
        raise Invalid(f"has host bits set; did you mean {pool}?")
    problem = pool_problem(pool)
    if problem:
        raise Invalid(problem)
    return pool
