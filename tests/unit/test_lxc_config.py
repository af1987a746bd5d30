"""The pure parts of the LXC runtime: config block rewriting, command
lines, the busybox DHCP fix. Files in the rootfs: test_runtime_rootfs.py."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest

from locker.errors import Invalid
from locker.project import CgroupSetting, CloneSource, DownloadSource, TemplateSource, VolumeSpec
from locker.runtime import lxcconfig, rootfs
from locker.runtime.lxc import create_argv, host_uses_cgroup2
from locker.testing.lxchost import host_cgroup_mounts

TEMPLATE_CONFIG = """\
# Template used to create this container: /usr/share/lxc/templates/lxc-busybox
lxc.net.0.type = veth
lxc.net.0.link = lxcbr0
lxc.net.0.flags = up
lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc
lxc.rootfs.path = dir:/var/lib/lxc/p_web/rootfs
lxc.uts.name = "p_web"
lxc.mount.entry = shm dev/shm tmpfs defaults,create=dir 0 0
lxc.cgroup.devices.allow = a
lxc.cap.drop = sys_module mac_admin mac_override sys_time
"""

ADDRESS = IPv4Interface("10.1.2.3/24")
GATEWAY = IPv4Address("10.1.2.1")


def block(**kwargs) -> list[str]:
    return lxcconfig.render_block("locker_p", ADDRESS, GATEWAY, **kwargs)


def test_rewrite_replaces_network_keeps_foreign_lines() -> None:
    out = lxcconfig.rewrite(TEMPLATE_CONFIG, block(), replace_hostname=False)
    lines = out.splitlines()
    assert "lxc.net.0.link = lxcbr0" not in lines
    assert "lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc" not in lines
    for kept in ("lxc.rootfs.path = dir:/var/lib/lxc/p_web/rootfs",
                 'lxc.uts.name = "p_web"',
                 "lxc.mount.entry = shm dev/shm tmpfs defaults,create=dir 0 0",
                 "lxc.cgroup.devices.allow = a",
                 "lxc.cap.drop = sys_module mac_admin mac_override sys_time"):
        assert kept in lines
    locker = lines[lines.index(lxcconfig.BEGIN):]
    assert locker[-1] == lxcconfig.END
    assert locker[1:-1] == [
        "lxc.net.0.type = veth",
        "lxc.net.0.link = locker_p",
        "lxc.net.0.flags = up",
        "lxc.net.0.name = eth0",
        "lxc.net.0.hwaddr = 00:16:3e:01:02:03",
        "lxc.net.0.ipv4.address = 10.1.2.3/24 10.1.2.255",
        "lxc.net.0.ipv4.gateway = 10.1.2.1",
    ]


def test_rewrite_replaces_previous_block_and_is_idempotent() -> None:
    first = lxcconfig.rewrite(TEMPLATE_CONFIG, block(mounts=[VolumeSpec("/srv/a", "/data")],
                                                     cgroup=[CgroupSetting("cpu.shares", "512")],
                                                     hostname="web"), True)
    second_block = lxcconfig.render_block("locker_q", IPv4Interface("10.9.9.9/24"),
                                          IPv4Address("10.9.9.1"), hostname="web")
    second = lxcconfig.rewrite(first, second_block, True)
    assert lxcconfig.rewrite(second, second_block, True) == second
    assert second.count(lxcconfig.BEGIN) == 1
    assert "/srv/a" not in second and "cpu.shares" not in second
    assert 'lxc.uts.name = "p_web"' not in second
    assert second.count("lxc.uts.name") == 1
    assert lxcconfig.read_address(second) == IPv4Interface("10.9.9.9/24")
    # the template's own lines survive both rewrites, in their order
    foreign = [line for line in TEMPLATE_CONFIG.splitlines()
               if not line.startswith(("lxc.net.", "lxc.uts.name"))]
    assert [line for line in second.splitlines() if line in foreign] == foreign


def test_block_mounts_and_cgroup_versions() -> None:
    v1 = block(mounts=[VolumeSpec("/srv/p/web/log", "/var/log/")],
               cgroup=[CgroupSetting("memory.limit_in_bytes", "2e8")])
    assert "lxc.mount.entry = /srv/p/web/log var/log none bind,create=dir 0 0" in v1
    assert "lxc.cgroup.memory.limit_in_bytes = 2e8" in v1
    v2 = block(cgroup=[CgroupSetting("memory.max", "200000000")], cgroup2=True)
    assert "lxc.cgroup2.memory.max = 200000000" in v2


@pytest.mark.parametrize("mount", [("relative", "/data"), ("/srv/a", "data"), ("/srv/a b", "/d"),
                                   ("/srv/../etc", "/d"), ("/srv/a", "/"), ("/srv/a", "/./"),
                                   ("/srv/a", "/d/../.."), ("/srv/a\x85", "/d")])
def test_a_volume_that_cannot_be_an_lxc_mount_entry_cannot_be_made(
        mount: tuple[str, str]) -> None:
    with pytest.raises(Invalid):  # so no config line is ever written for it
        VolumeSpec(*mount)


@pytest.mark.parametrize("setting", [("cpu shares", "1"), ("lxc.net.0.link", "x\nlxc.y=1"),
                                     ("cpu.shares", "1\nlxc.net.1.type = veth"),
                                     ("Memory.max", "100M"), ("memory.max", " ")])
def test_a_cgroup_setting_that_cannot_be_an_lxc_config_line_cannot_be_made(
        setting: tuple[str, str]) -> None:
    with pytest.raises(Invalid):  # so no config line is ever written for it
        CgroupSetting(*setting)


def test_read_back_values() -> None:
    assert lxcconfig.read_address(TEMPLATE_CONFIG) is None
    assert lxcconfig.rootfs_dir(TEMPLATE_CONFIG) == "/var/lib/lxc/p_web/rootfs"
    assert lxcconfig.rootfs_dir("lxc.rootfs.path = overlay:/a:/b\n") is None
    assert lxcconfig.config_value(TEMPLATE_CONFIG, "lxc.uts.name") == "p_web"


def test_create_argv() -> None:
    assert create_argv("p_web", TemplateSource("busybox")) == \
        ["lxc-create", "-n", "p_web", "-t", "busybox"]
    assert create_argv("p_web", TemplateSource("debian", (("release", "bookworm"),))) == \
        ["lxc-create", "-n", "p_web", "-t", "debian", "--", "--release", "bookworm"]
    assert create_argv("p_b", CloneSource("a"), clone_from="p_a") == \
        ["lxc-copy", "-n", "p_a", "-N", "p_b"]
    assert create_argv("p_b", CloneSource("other")) == ["lxc-copy", "-n", "other", "-N", "p_b"]


def test_download_argv() -> None:
    assert create_argv("p_web", DownloadSource("debian", "bookworm", "amd64")) == \
        ["lxc-create", "-n", "p_web", "-t", "download", "--",
         "--dist", "debian", "--release", "bookworm", "--arch", "amd64"]
    assert create_argv("p_web", DownloadSource("alpine", "3.19", "arm64", "cloud"))[-2:] == \
        ["--variant", "cloud"]


def test_cgroup_layout_detection(tmp_path) -> None:
    assert not host_uses_cgroup2(str(tmp_path))
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    assert host_uses_cgroup2(str(tmp_path))


def test_host_cgroup_mounts_parsing(tmp_path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "50 23 0:40 / /proc rw - proc proc rw\n")
    assert host_cgroup_mounts(str(info)) == [
        ("/sys/fs/cgroup/cpu", "cgroup", "rw,cpu"),
        ("/sys/fs/cgroup/systemd", "cgroup", "rw,name=systemd"),
        ("/sys/fs/cgroup/unified", "cgroup2", "rw")]


def test_busybox_dhcp_client_is_switched_off_once() -> None:
    rcs = "#!/bin/sh\n/bin/syslogd\n/bin/mount -a\n/bin/udhcpc\n"
    fixed = rootfs.without_dhcp_client(rcs)
    assert fixed is not None
    assert fixed.splitlines()[:3] == rcs.splitlines()[:3]
    assert fixed.splitlines()[3].startswith("#") and "udhcpc" in fixed.splitlines()[3]
    assert rootfs.without_dhcp_client(fixed) is None
    assert rootfs.without_dhcp_client("  udhcpc -b -i eth0\n").startswith("  # disabled")
    assert rootfs.without_dhcp_client("#!/bin/sh\nexec /etc/init.d/rc S\n") is None
