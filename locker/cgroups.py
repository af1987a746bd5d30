"""cgroup settings for the host's cgroup version.

A project file may be written for a cgroup v1 host (``memory.limit_in_bytes``,
``cpu.shares``) and run on a v2 host (``memory.max``, ``cpu.weight``), or the
other way round. Settings of the host's own version pass as they are; the
other version's keys that have an exact counterpart are mapped (values
converted where the scales differ); the others are refused with a sentence
saying what to write instead. Keys this table does not know pass unchanged:
LXC and the kernel judge them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from locker.errors import ConfigError
from locker.project import CgroupSetting, Project


def _same(value: str) -> str:
    return value


def _v1_memory_to_v2(value: str) -> str:
    return "max" if value.strip() == "-1" else value


def _v2_memory_to_v1(value: str) -> str:
    return "-1" if value.strip() == "max" else value


def _shares_to_weight(value: str) -> str:
    """cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default
    100), the conversion systemd and the kernel's documentation use."""
    shares = min(max(int(value), 2), 262144)
    return str(1 + (shares - 2) * 9999 // 262142)


def _weight_to_shares(value: str) -> str:
    weight = min(max(int(value), 1), 10000)
    return str(2 + (weight - 1) * 262142 // 9999)


@dataclass(frozen=True)
class Counterpart:
    key: str
    convert: Callable[[str], str]


#: v1 key -> its v2 counterpart; None: no exact one (the value says why).
V1_TO_V2: dict[str, Counterpart | str] = {
    "memory.limit_in_bytes": Counterpart("memory.max", _v1_memory_to_v2),
    "memory.soft_limit_in_bytes": Counterpart("memory.low", _v1_memory_to_v2),
    "cpu.shares": Counterpart("cpu.weight", _shares_to_weight),
    "blkio.weight": Counterpart("io.weight", _same),
    "memory.memsw.limit_in_bytes": "memory.swap.max limits swap alone, not memory plus "
                                   "swap: set memory.max and memory.swap.max",
    "cpu.cfs_quota_us": "set cpu.max=\"QUOTA PERIOD\" (microseconds) instead",
    "cpu.cfs_period_us": "set cpu.max=\"QUOTA PERIOD\" (microseconds) instead",
    "memory.swappiness": "cgroup v2 has no per-cgroup swappiness",
}
#: v2 key -> its v1 counterpart, or why there is none.
V2_TO_V1: dict[str, Counterpart | str] = {
    "memory.max": Counterpart("memory.limit_in_bytes", _v2_memory_to_v1),
    "memory.low": Counterpart("memory.soft_limit_in_bytes", _v2_memory_to_v1),
    "cpu.weight": Counterpart("cpu.shares", _weight_to_shares),
    "io.weight": Counterpart("blkio.weight", _same),
    "cpu.max": "set cpu.cfs_quota_us and cpu.cfs_period_us instead",
    "memory.swap.max": "set memory.memsw.limit_in_bytes (memory plus swap) instead",
}


class Refused(ValueError):
    """A setting of the other cgroup version without a counterpart."""


def for_host(settings: Sequence[CgroupSetting], cgroup2: bool) -> tuple[CgroupSetting, ...]:
    """``settings`` as the host's cgroup version takes them; raises
    ``Refused`` naming the first key that cannot be mapped."""
    other = V1_TO_V2 if cgroup2 else V2_TO_V1
    version, theirs = ("v2", "v1") if cgroup2 else ("v1", "v2")
    mapped = []
    for setting in settings:
        key, value = setting.key, setting.value
        counterpart = other.get(key)
        if counterpart is None:
            mapped.append(setting)
        elif isinstance(counterpart, Counterpart):
            try:
                mapped.append(CgroupSetting(counterpart.key, counterpart.convert(value)))
            except ValueError:
                raise Refused(f"{key}={value!r}: not a number, which {key} takes") from None
        else:
            raise Refused(f"{key} is a cgroup {theirs} setting and this host uses cgroup "
                          f"{version}; {counterpart}")
    return tuple(mapped)


def for_project(project: Project, containers: Sequence[str],
                cgroup2: bool) -> dict[str, tuple[CgroupSetting, ...]]:
    """Each container's settings as the host takes them; a setting of the
    other version without a counterpart is a ConfigError naming the file
    and every container that has one, raised before anything changes."""
    found, problems = {}, []
    for name in containers:
        try:
            found[name] = for_host(project.container(name).cgroup, cgroup2)
        except Refused as refused:
            problems.append(f"{project.path}: {name}: cgroup: {refused}.")
    if problems:
        raise ConfigError(f"{project.path}: cgroup settings this host cannot take; "
                          f"nothing was changed.", problems)
    return found
