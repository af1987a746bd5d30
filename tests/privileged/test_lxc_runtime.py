"""LxcRuntime against real LXC busybox containers.

Each test gets its own network namespace holding a bridge ``br0`` and a
temporary lxcpath; every LXC command runs inside the namespace (through
``lxc_command_prefix``, which also keeps the host's cgroups visible), and
every container is killed and destroyed afterwards, also on failure.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from locker.errors import LockerError
from locker.project import CgroupSetting, CloneSource, TemplateSource, VolumeSpec
from locker.runtime import ABSENT, FROZEN, RUNNING, STOPPED
from locker.runtime.lxc import LxcRuntime
from locker.runtime.rootfs import ContainerFileRefused
from locker.testing.lxchost import lxc_command_prefix
from locker.testing.netns import NetNS

pytestmark = pytest.mark.privileged

BUSYBOX = TemplateSource("busybox")
TIMEOUT = 10.0


def _missing() -> str | None:
    for tool in ("lxc-create", "lxc-attach", "busybox"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command (packages lxc, busybox-static)"
    if not os.path.exists("/usr/share/lxc/templates/lxc-busybox"):
        return "needs LXC's busybox template (package lxc-templates)"
    return None


@dataclass
class Env:
    ns: NetNS
    lxcpath: str
    network: IPv4Network
    runtime: LxcRuntime

    @property
    def gateway(self) -> IPv4Address:
        return self.network[1]

    def address(self, host: int) -> IPv4Interface:
        return IPv4Interface(f"{self.network[host]}/{self.network.prefixlen}")

    def lxc(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*lxc_command_prefix(self.ns.name), argv[0], "-P", self.lxcpath,
                               *argv[1:]], capture_output=True, text=True, check=check,
                              timeout=30)

    def attach(self, name: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.lxc("lxc-attach", "-n", name, "--", *command, check=check)

    def busybox(self, name: str, host: int, **configure) -> IPv4Interface:
        """A configured, stopped busybox container with address .host."""
        self.runtime.create(name, BUSYBOX)
        address = self.address(host)
        self.runtime.configure(name, "br0", address, self.gateway, **configure)
        return address


@pytest.fixture
def env(netns_factory, tmp_path: Path) -> Iterator[Env]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    ns = netns_factory("lockerlxc")
    network = IPv4Network(f"10.{random.randint(2, 254)}.{random.randint(0, 255)}.0/24")
    ns.run(["ip", "link", "add", "br0", "type", "bridge"])
    ns.run(["ip", "addr", "add", f"{network[1]}/24", "dev", "br0"])
    ns.run(["ip", "link", "set", "br0", "up"])
    lxcpath = tmp_path / "lxc"
    lxcpath.mkdir()
    e = Env(ns, str(lxcpath), network, LxcRuntime(str(lxcpath), lxc_command_prefix(ns.name)))
    try:
        yield e
    finally:
        # runs before netns_factory deletes the namespace
        for config in lxcpath.glob("*/config"):
            name = config.parent.name
            e.lxc("lxc-stop", "-n", name, "-k", check=False)
            e.lxc("lxc-destroy", "-n", name, "-f", check=False)
        leftovers = [p.name for p in lxcpath.iterdir()]
        assert not leftovers, f"containers left behind: {leftovers}"


def inet_addresses(env: Env, name: str) -> list[str]:
    out = env.attach(name, "ip", "-4", "-o", "addr", "show").stdout
    return sorted(f"{line.split()[1]} {line.split()[3]}" for line in out.splitlines())


def test_busybox_comes_up_with_its_static_address_and_keeps_it(env: Env) -> None:
    rt = env.runtime
    assert rt.state("p_web") == ABSENT
    rt.create("p_web", BUSYBOX)
    assert rt.state("p_web") == STOPPED
    assert rt.configured_address("p_web") is None
    address = env.address(2)
    rt.configure("p_web", "br0", address, env.gateway, hostname="web")
    assert rt.configured_address("p_web") == address
    assert rt.addresses("p_web") == ()

    for _round in range(2):  # the same after a stop and a start
        rt.start("p_web", TIMEOUT)
        assert rt.state("p_web") == RUNNING
        assert rt.addresses("p_web") == (address.ip,)
        assert inet_addresses(env, "p_web") == ["eth0 " + address.with_prefixlen,
                                                "lo 127.0.0.1/8"]
        ping = env.attach("p_web", "ping", "-c1", "-W2", str(env.gateway), check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert env.attach("p_web", "hostname").stdout.strip() == "web"
        rt.stop("p_web", TIMEOUT)
        assert rt.state("p_web") == STOPPED
        assert rt.addresses("p_web") == ()
    rt.stop("p_web", TIMEOUT)  # stopping a stopped container is a no-op

    rt.destroy("p_web")
    assert rt.state("p_web") == ABSENT
    assert not Path(env.lxcpath, "p_web").exists()
    with pytest.raises(LockerError, match="p_web"):
        rt.destroy("p_web")


def test_freeze_unfreeze_and_cgroup_settings(env: Env) -> None:
    rt = env.runtime
    env.busybox("p_app", 3, cgroup=[CgroupSetting("pids.max", "100")])
    assert "pids.max = 100" in Path(env.lxcpath, "p_app", "config").read_text()
    rt.start("p_app", TIMEOUT)
    assert env.lxc("lxc-cgroup", "-n", "p_app", "pids.max").stdout.strip() == "100"
    rt.apply_cgroup("p_app", [CgroupSetting("pids.max", "50")])
    assert env.lxc("lxc-cgroup", "-n", "p_app", "pids.max").stdout.strip() == "50"
    with pytest.raises(LockerError, match="p_app.*no.such.key"):
        rt.apply_cgroup("p_app", [CgroupSetting("no.such.key", "1")])

    rt.freeze("p_app")
    assert rt.state("p_app") == FROZEN
    # a frozen container's processes do not run: attaching cannot finish
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([*lxc_command_prefix(env.ns.name), "lxc-attach", "-P", env.lxcpath,
                        "-n", "p_app", "--", "true"], capture_output=True, timeout=3)
    rt.unfreeze("p_app")
    assert rt.state("p_app") == RUNNING
    assert env.attach("p_app", "true").returncode == 0

    rt.freeze("p_app")
    rt.stop("p_app", TIMEOUT)  # a frozen container is thawed, then stopped
    assert rt.state("p_app") == STOPPED


def test_files_in_rootfs_and_bind_volume(env: Env, tmp_path: Path) -> None:
    rt = env.runtime
    volume = tmp_path / "srv" / "p" / "web" / "data"  # configure creates it
    env.busybox("p_web", 2, mounts=[VolumeSpec(str(volume), "/srv/data")])
    assert volume.is_dir()
    hosts = "127.0.0.1 localhost\n10.1.1.3 db.example.net db\n"
    rt.write_file("p_web", "/etc/hosts", hosts)
    assert rt.read_file("p_web", "/etc/hosts") == hosts
    assert rt.read_file("p_web", "/etc/no-such-file") is None
    with pytest.raises(LockerError, match="Refusing"):
        rt.read_file("p_web", "/../config")

    rt.start("p_web", TIMEOUT)
    assert env.attach("p_web", "cat", "/etc/hosts").stdout == hosts
    (volume / "hello").write_text("from the host\n")
    assert env.attach("p_web", "cat", "/srv/data/hello").stdout == "from the host\n"
    env.attach("p_web", "sh", "-c", "echo from inside > /srv/data/back")
    assert (volume / "back").read_text() == "from inside\n"


def test_clone_gets_its_own_address_and_reaches_the_original(env: Env) -> None:
    rt = env.runtime
    first = env.busybox("p_a", 2)
    rt.create("p_b", CloneSource("a"), clone_from="p_a")
    assert rt.state("p_b") == STOPPED
    assert rt.configured_address("p_b") == first  # copied; the core reconfigures
    second = env.address(3)
    rt.configure("p_b", "br0", second, env.gateway)
    assert rt.configured_address("p_a") == first
    rt.start("p_a", TIMEOUT)
    rt.start("p_b", TIMEOUT)
    assert rt.addresses("p_a") == (first.ip,)
    assert rt.addresses("p_b") == (second.ip,)
    ping = env.attach("p_b", "ping", "-c1", "-W2", str(first.ip), check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_errors_name_the_container_and_say_what_lxc_said(env: Env) -> None:
    rt = env.runtime
    rt.create("p_web", BUSYBOX)
    rt.configure("p_web", "nosuchbr", env.address(2), env.gateway)
    with pytest.raises(LockerError) as failed:
        rt.start("p_web", TIMEOUT)
    message = str(failed.value)
    assert "p_web" in message and "could not start" in message
    assert "nosuchbr" in message or "network" in message.lower(), message
    assert rt.state("p_web") == STOPPED
    with pytest.raises(LockerError, match="p_web.*could not create"):
        rt.create("p_web", BUSYBOX)
    with pytest.raises(LockerError, match="p_other does not exist"):
        rt.configure("p_other", "br0", env.address(3), env.gateway)


# -- a hostile container's rootfs ----------------------------------------------------

FLIP_ETC = ("while [ ! -e /stop ]; do mv /etc /etc.real && mv /etc.link /etc "
            "&& mv /etc /etc.link && mv /etc.real /etc; done")


def test_a_running_container_swapping_etc_for_a_host_symlink_cannot_redirect_writes(
        env: Env, tmp_path: Path) -> None:
    """Inside the running container, a loop swaps /etc for a symlink to a
    host directory (the path as the host sees it) while Locker rewrites
    the container's /etc/hosts, as ``links`` does."""
    rt = env.runtime
    env.busybox("p_web", 2)
    rt.start("p_web", TIMEOUT)
    rootfs = Path(env.lxcpath, "p_web", "rootfs")
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    canary = host_etc / "hosts"
    canary.write_text("the host's own hosts file\n")
    env.attach("p_web", "ln", "-s", str(host_etc), "/etc.link")
    flipper = subprocess.Popen([*lxc_command_prefix(env.ns.name), "lxc-attach", "-P",
                                env.lxcpath, "-n", "p_web", "--", "sh", "-c", FLIP_ETC],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    written = refused = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline or written < 20 or refused < 1:
            try:
                rt.write_file("p_web", "/etc/hosts", f"10.1.1.{written % 250} db # locker\n")
                written += 1
            except LockerError:
                refused += 1  # /etc was the link at that moment
            assert time.monotonic() < deadline + 30, (written, refused)
    finally:
        (rootfs / "stop").touch()
        try:
            flipper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            flipper.kill()
            flipper.wait()
    assert canary.read_text() == "the host's own hosts file\n"
    assert sorted(p.name for p in host_etc.iterdir()) == ["hosts"]
    assert (rootfs / "etc" / "hosts").read_text().endswith(" db # locker\n")


def _expire(_signum, _frame):
    raise TimeoutError("blocked on the container's file")


def test_a_fifo_or_device_as_etc_hosts_is_refused_at_once(env: Env) -> None:
    rt = env.runtime
    env.busybox("p_web", 2)
    rt.start("p_web", TIMEOUT)
    env.attach("p_web", "sh", "-c", "rm -f /etc/hosts && mkfifo /etc/hosts")
    previous = signal.signal(signal.SIGALRM, _expire)
    signal.alarm(10)
    try:
        with pytest.raises(ContainerFileRefused, match="p_web.*/etc/hosts.*FIFO"):
            rt.read_file("p_web", "/etc/hosts")
        with pytest.raises(ContainerFileRefused, match="FIFO"):
            rt.write_file("p_web", "/etc/hosts", "10.1.1.3 db # locker\n")
        hosts = Path(env.lxcpath, "p_web", "rootfs", "etc", "hosts")
        hosts.unlink()
        os.mknod(hosts, stat.S_IFCHR | 0o666, os.makedev(1, 5))  # /dev/zero
        with pytest.raises(ContainerFileRefused, match="character device"):
            rt.read_file("p_web", "/etc/hosts")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
