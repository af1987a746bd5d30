"""Names Locker derives: LXC container names, bridge names, rule comments.

Project and container names are a letter followed by letters, digits and
hyphens, not ending in a hyphen, at most ``NAME_MAX`` characters
(``my-app``, ``web-1``), so every derived name stays within the limits of
the kernel (interface names, 15 bytes; nft comments, 128 bytes), needs no
quoting anywhere, and a container's name is a valid hostname. No
underscore: it separates project and container in the LXC name
``<project>_<container>``, which must stay unambiguous, and is not
allowed in hostnames.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

NAME_MAX = 32
NAME_PATTERN = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
IFNAME_MAX = 15
BRIDGE_PREFIX = "locker_"
JUMP_COMMENT = "LOCKER"
TAG_PREFIX = "locker"

#: Purposes a rule's tag may name. Project-wide: masquerade, outbound
#: (bridge to elsewhere), replies (back into the bridge), deny (new
#: connections into the bridge from elsewhere that are not forwards),
#: hairpin (masquerade of forwarded traffic from the bridge back into it),
#: localhost (masquerade of loopback-sourced traffic into the bridge: forwards
#: reached at 127.0.0.1 from the host), guard (packets from the bridge to
#: 127.0.0.0/8), isolate (new connections from the bridge to the host's
#: addresses other than the gateway; isolated projects only). Per container:
#: dnat and forward (the two halves of a port forward), link and link-back
#: (the two directions of a link). Structural, per project: dispatch (a
#: backend's rules that lead a project's packets into its own chains and
#: look them up in its own maps or sets; they carry no value).
PURPOSES = ("masquerade", "outbound", "replies", "deny", "hairpin", "localhost", "guard",
            "isolate", "dnat", "forward", "link", "link-back", "dispatch")
#: The administrator's chain, in every firewall backend (like Docker's
#: DOCKER-USER): evaluated before every accept of Locker's; Locker creates it
#: empty when missing and never changes or deletes what is in it.
USER_CHAIN = "LOCKER_USER"


def is_valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX and NAME_PATTERN.fullmatch(name) is not None


def suggested_name(text: str) -> str | None:
    """A valid name close to ``text`` (``my_app`` -> ``my-app``, ``My App``
    -> ``My-App``), or None when there is none: what a message proposes to
    set, never used without being set."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", text)
    name = re.sub(r"^[^A-Za-z]+", "", name)[:NAME_MAX].strip("-")
    return name if is_valid_name(name) else None


def lxc_name(project: str, container: str) -> str:
    """The LXC container's name: ``<project>_<container>``."""
    return f"{project}_{container}"


def bridge_name(project: str) -> str:
    """The project's bridge: ``locker_<project>`` when that fits in 15
    characters; otherwise ``lk`` + the project's first four characters +
    ``_`` + the first eight hex digits of the SHA-256 of the project name
    (for example ``lkwebs_1a2b3c4d``).

    The short form never looks like a long one (no ``locker_`` prefix), and
    two projects share a short form only if their names agree in the first
    four characters and in 32 bits of their hashes.
    """
    plain = BRIDGE_PREFIX + project
    if len(plain) <= IFNAME_MAX:
        return plain
    digest = hashlib.sha256(project.encode()).hexdigest()[:8]
    return f"lk{project[:4]}_{digest}"


def bridge_alias(project: str) -> str:
    """The owner mark Locker sets as its bridges' interface alias
    (``IFLA_IFALIAS``, ``ip link set dev NAME alias TEXT``):
    ``locker:<project>``. It never parses as a ``Tag``."""
    return f"{TAG_PREFIX}:{project}"


def project_of_bridge_alias(alias: str | None) -> str | None:
    """The project a bridge alias names, or None when it is not Locker's mark."""
    prefix, sep, project = (alias or "").partition(":")
    if prefix != TAG_PREFIX or not sep or not is_valid_name(project):
        return None
    return project


def is_locker_bridge(name: str, alias: str | None) -> bool:
    """Whether the bridge ``name`` with this alias is Locker's: the alias is
    Locker's mark and names the project whose bridge is called ``name``."""
    project = project_of_bridge_alias(alias)
    return project is not None and bridge_name(project) == name


@dataclass(frozen=True)
class Tag:
    """The owner comment on every rule but the jumps:
    ``locker:PROJECT[:CONTAINER]:PURPOSE[:PEER]``.

    Only characters in ``[A-Za-z0-9:-]`` appear, at most 120 bytes, so the
    comment is safe for nft (128 bytes) and iptables (256 bytes) alike.
    """

    project: str
    purpose: str
    container: str | None = None
    peer: str | None = None

    def __post_init__(self) -> None:
        if self.purpose not in PURPOSES:
            raise ValueError(f"unknown rule purpose {self.purpose!r}")
        for part in (self.project, self.container, self.peer):
            if part is not None and not is_valid_name(part):
                raise ValueError(f"{part!r} is not a valid Locker name")

    def __str__(self) -> str:
        parts = [TAG_PREFIX, self.project]
        if self.container is not None:
            parts.append(self.container)
        parts.append(self.purpose)
        if self.peer is not None:
            parts.append(self.peer)
        return ":".join(parts)

    @classmethod
    def parse(cls, comment: str | None) -> Tag | None:
        """The tag a comment holds, or None when it is not one of Locker's."""
        if not comment:
            return None
        parts = comment.split(":")
        if parts[0] != TAG_PREFIX:
            return None
        try:
            match parts[1:]:
                case [project, purpose]:
                    return cls(project, purpose)
                case [project, container, purpose]:
                    return cls(project, purpose, container)
                case [project, container, purpose, peer]:
                    return cls(project, purpose, container, peer)
        except ValueError:
            return None
        return None
