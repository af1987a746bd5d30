"""cgroup settings mapped to the host's cgroup version, or refused with a
sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from locker import cgroups
from locker.errors import ConfigError
from locker.ops import lifecycle
from locker.project import CgroupSetting, ContainerSpec, Project, TemplateSource
from test_ops import make_env


@pytest.mark.parametrize(("settings", "cgroup2", "expected"), [
    ((("memory.limit_in_bytes", "200000000"),), True, (("memory.max", "200000000"),)),
    ((("memory.limit_in_bytes", "-1"),), True, (("memory.max", "max"),)),
    ((("cpu.shares", "1024"),), True, (("cpu.weight", "39"),)),
    ((("cpu.shares", "2"),), True, (("cpu.weight", "1"),)),
    ((("memory.max", "max"),), False, (("memory.limit_in_bytes", "-1"),)),
    ((("cpu.weight", "100"),), False, (("cpu.shares", "2597"),)),
    ((("memory.max", "1G"), ("pids.max", "64")), True, (("memory.max", "1G"), ("pids.max", "64"))),
    ((("cpu.shares", "512"),), False, (("cpu.shares", "512"),)),
])
def test_the_other_versions_keys_are_mapped(settings, cgroup2, expected) -> None:
    mapped = cgroups.for_host([CgroupSetting(*s) for s in settings], cgroup2)
    assert mapped == tuple(CgroupSetting(*s) for s in expected)


@pytest.mark.parametrize(("key", "cgroup2", "says"), [
    ("cpu.cfs_quota_us", True, 'set cpu.max="QUOTA PERIOD"'),
    ("memory.memsw.limit_in_bytes", True, "memory.swap.max"),
    ("cpu.max", False, "cpu.cfs_quota_us"),
])
def test_keys_without_a_counterpart_are_refused_with_what_to_write(key, cgroup2, says) -> None:
    with pytest.raises(cgroups.Refused, match="this host uses cgroup") as caught:
        cgroups.for_host((CgroupSetting(key, "1"),), cgroup2)
    assert says in str(caught.value)


def test_start_writes_the_hosts_keys_and_refuses_before_changing_anything(tmp_path: Path) -> None:
    project = Project("shop", tmp_path / "locker.yaml", (
        ContainerSpec("web", TemplateSource("busybox"), cgroup=(CgroupSetting("cpu.shares", "512"),)),))
    env = make_env(tmp_path, project)
    env.ctx.cgroup2 = lambda: True
    env.create_all()
    lifecycle.start(env.ctx, ["web"])
    assert env.lxc("web").config["cgroup"] == (CgroupSetting("cpu.weight", "20"),)

    refused = Project("blog", tmp_path / "blog.yaml", (
        ContainerSpec("web", TemplateSource("busybox"), cgroup=(CgroupSetting("cpu.cfs_quota_us", "5"),)),))
    other = make_env(tmp_path / "b", refused)
    other.ctx.cgroup2 = lambda: True
    other.create_all()
    with pytest.raises(ConfigError) as caught:
        lifecycle.start(other.ctx, ["web"])
    assert "web: cgroup: cpu.cfs_quota_us is a cgroup v1 setting" in caught.value.problems[0]
    assert other.link.bridges == {} and other.lxc("web").state == "STOPPED"
