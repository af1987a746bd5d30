"""Files in a container's root file system (``locker.runtime.rootfs``),
through openat2 and through the descriptor walk that replaces it on
kernels without it. A rootfs here is a temporary directory; its parent
stands in for the host."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from locker.errors import LockerError
from locker.runtime import rootfs
from locker.runtime.rootfs import MAX_FILE_BYTES, ContainerFileRefused

NAME = "p_web"


@pytest.fixture(params=["openat2", "walk"])
def resolver(request, monkeypatch) -> str:
    if request.param == "openat2" and not rootfs._can_openat2():
        pytest.skip("this kernel has no openat2 (Linux 5.6+)")
    monkeypatch.setattr(rootfs, "_openat2_usable", request.param == "openat2")
    return request.param


@pytest.fixture
def root(tmp_path: Path, resolver: str) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "run").mkdir()
    (r / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (tmp_path / "secret").write_text("host secret\n")
    return r


def read(root: Path, path: str) -> str | None:
    return rootfs.read_text(root, path, container=NAME)


def write(root: Path, path: str, text: str) -> None:
    rootfs.write_text(root, path, text, container=NAME)


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Interrupts a call that blocks longer than ``seconds``."""
    def expire(_signum, _frame):
        raise TimeoutError(f"still blocked after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def test_absolute_symlink_is_read_inside_the_rootfs(root: Path) -> None:
    (root / "run" / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    os.symlink("/run/resolv.conf", root / "etc" / "resolv.conf")
    assert read(root, "/etc/resolv.conf") == "nameserver 10.0.0.1\n"
    # an absolute link to a host path names the file inside the rootfs
    os.symlink(str(root.parent / "secret"), root / "etc" / "abs")
    assert read(root, "/etc/abs") is None


def test_writing_a_symlinked_resolv_conf_replaces_the_link_itself(root: Path) -> None:
    """systemd-resolved images: /etc/resolv.conf -> /run/systemd/resolve/..."""
    stub = root / "run" / "systemd" / "resolve" / "stub-resolv.conf"
    stub.parent.mkdir(parents=True)
    stub.write_text("nameserver 127.0.0.53\n")
    os.symlink("/run/systemd/resolve/stub-resolv.conf", root / "etc" / "resolv.conf")
    host_run = root.parent / "run" / "systemd" / "resolve" / "stub-resolv.conf"
    host_run.parent.mkdir(parents=True)
    host_run.write_text("the host's\n")
    os.symlink(str(host_run), root / "etc" / "hostname")

    write(root, "/etc/resolv.conf", "nameserver 10.1.1.1\n")
    write(root, "/etc/hostname", "web\n")

    resolv = root / "etc" / "resolv.conf"
    assert not resolv.is_symlink() and resolv.read_text() == "nameserver 10.1.1.1\n"
    assert stat.S_IMODE(resolv.stat().st_mode) == 0o644
    assert stub.read_text() == "nameserver 127.0.0.53\n"
    assert (root / "etc" / "hostname").read_text() == "web\n"
    assert host_run.read_text() == "the host's\n"


@pytest.mark.parametrize("path", ["etc/hosts", "/../secret", "/etc/../../secret", "/"])
def test_requested_paths_must_stay_inside(root: Path, path: str) -> None:
    with pytest.raises(LockerError, match="Refusing"):
        write(root, path, "x")
    if path != "/":
        with pytest.raises(LockerError, match="Refusing"):
            read(root, path)


def test_relative_symlinks_climbing_out_stop_at_the_rootfs(root: Path) -> None:
    """As in the container, ``..`` of its root is its root."""
    os.symlink("../../secret", root / "etc" / "escape")
    os.symlink("../../", root / "etc" / "up")
    assert read(root, "/etc/escape") is None
    assert read(root, "/etc/up/secret") is None
    (root / "secret").write_text("the container's\n")
    assert read(root, "/etc/escape") == "the container's\n"
    write(root, "/etc/up/secret", "x\n")
    assert (root / "secret").read_text() == "x\n"
    assert (root.parent / "secret").read_text() == "host secret\n"


def test_symlink_loops_are_refused(root: Path) -> None:
    os.symlink("/etc/b", root / "etc" / "a")
    os.symlink("/etc/a", root / "etc" / "b")
    os.symlink("/loop/x", root / "loop")
    with pytest.raises(ContainerFileRefused, match="symlink"):
        read(root, "/etc/a")
    with pytest.raises(ContainerFileRefused, match="symlink"):
        write(root, "/loop/file", "x")


def test_write_keeps_mode_and_owner_and_replaces_atomically(root: Path) -> None:
    hosts = root / "etc" / "hosts"
    hosts.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(hosts, 100000, 100000)  # an unprivileged container's root
    before = hosts.stat().st_ino
    write(root, "/etc/hosts", "10.1.1.2 web\n")
    assert hosts.read_text() == "10.1.1.2 web\n"
    assert stat.S_IMODE(hosts.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        assert (hosts.stat().st_uid, hosts.stat().st_gid) == (100000, 100000)
    assert hosts.stat().st_ino != before  # renamed over, not rewritten in place
    assert sorted(p.name for p in hosts.parent.iterdir()) == ["hosts"]
    write(root, "/etc/hostname", "web\n")
    assert stat.S_IMODE((root / "etc" / "hostname").stat().st_mode) == 0o644
    assert read(root, "/etc/missing") is None
    assert read(root, "/nodir/file") is None
    assert read(root, "/etc/hosts/below") is None
    with pytest.raises(LockerError, match="directory does not exist"):
        write(root, "/nodir/file", "x")


def test_a_fifo_is_refused_at_once(root: Path) -> None:
    hosts = root / "etc" / "hosts"
    hosts.unlink()
    os.mkfifo(hosts)
    with within(5), pytest.raises(ContainerFileRefused, match="FIFO"):
        read(root, "/etc/hosts")
    with within(5), pytest.raises(ContainerFileRefused, match="FIFO"):
        write(root, "/etc/hosts", "x\n")
    assert stat.S_ISFIFO(os.lstat(hosts).st_mode)


@needs_root
@pytest.mark.parametrize("device", [(1, 3), (1, 5)], ids=["null", "zero"])
def test_a_device_node_is_refused_without_being_opened(root: Path,
                                                       device: tuple[int, int]) -> None:
    hosts = root / "etc" / "hosts"
    hosts.unlink()
    os.mknod(hosts, stat.S_IFCHR | 0o666, os.makedev(*device))
    with within(5), pytest.raises(ContainerFileRefused, match="character device"):
        read(root, "/etc/hosts")
    with pytest.raises(ContainerFileRefused, match="character device"):
        write(root, "/etc/hosts", "x\n")


@pytest.mark.parametrize("size", [MAX_FILE_BYTES + 1, 4 << 30], ids=["just-over", "4GiB"])
def test_a_file_over_the_limit_is_refused(root: Path, size: int) -> None:
    with open(root / "etc" / "hosts", "wb") as f:
        f.truncate(size)  # sparse: takes no space
    with within(5), pytest.raises(ContainerFileRefused, match="larger than"):
        read(root, "/etc/hosts")


def test_a_file_at_the_limit_is_read(root: Path) -> None:
    (root / "etc" / "hosts").write_bytes(b"#" * MAX_FILE_BYTES)
    assert len(read(root, "/etc/hosts") or "") == MAX_FILE_BYTES


def test_directories_and_binary_files_are_refused(root: Path) -> None:
    (root / "etc" / "hosts").unlink()
    (root / "etc" / "hosts").mkdir()
    with pytest.raises(ContainerFileRefused, match="directory"):
        read(root, "/etc/hosts")
    with pytest.raises(ContainerFileRefused, match="directory"):
        write(root, "/etc/hosts", "x\n")
    (root / "etc" / "hostname").write_bytes(b"\xff\xfe")
    with pytest.raises(ContainerFileRefused, match="UTF-8"):
        read(root, "/etc/hostname")


def test_a_refusal_names_the_container_and_the_file_and_what_to_do(root: Path) -> None:
    (root / "etc" / "hosts").unlink()
    os.mkfifo(root / "etc" / "hosts")
    with pytest.raises(ContainerFileRefused) as refused:
        read(root, "/etc/hosts")
    assert (refused.value.container, refused.value.path) == (NAME, "/etc/hosts")
    assert isinstance(refused.value, LockerError)
    message = str(refused.value)
    assert NAME in message and "/etc/hosts" in message and "regular" in message


FLIPPER = textwrap.dedent("""\
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    a, b = (os.fsencode(p) for p in sys.argv[1:3])
    print("ready", flush=True)
    while True:  # RENAME_EXCHANGE: etc is always there, a directory or the link
        if libc.renameat2(-100, a, -100, b, 2) != 0:
            sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
    """)


def test_a_container_swapping_etc_for_a_host_symlink_never_reaches_the_host(
        root: Path, tmp_path: Path) -> None:
    """``/etc`` is exchanged, in a loop in another process, with a symlink
    to a directory standing in for the host's /etc, while Locker writes
    and reads /etc/hosts; the host's file never changes and is never read."""
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    canary = host_etc / "hosts"
    canary.write_text("the host's own hosts file\n")
    for target in (str(host_etc), "../host-etc", "../../host-etc"):
        link = root / "etc-link"
        os.symlink(target, link)
        flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(root / "etc"), str(link)],
                                   stdout=subprocess.PIPE, text=True)
        try:
            assert flipper.stdout is not None and flipper.stdout.readline() == "ready\n"
            written = 0
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline or written < 20:
                try:
                    write(root, "/etc/hosts", f"10.1.1.{written % 250} web # locker\n")
                    written += 1
                    assert read(root, "/etc/hosts") != canary.read_text()
                except LockerError:
                    pass  # /etc was the link this time: nothing to write into
                assert flipper.poll() is None, "the flipper stopped"
        finally:
            flipper.kill()
            flipper.wait()
        assert canary.read_text() == "the host's own hosts file\n"
        assert sorted(p.name for p in host_etc.iterdir()) == ["hosts"]
        if (root / "etc").is_symlink():  # the directory back in place
            (root / "etc").unlink()
            os.rename(link, root / "etc")
        else:
            link.unlink()
    assert (root / "etc" / "hosts").read_text().endswith("web # locker\n")


def test_the_walk_is_used_where_openat2_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(rootfs, "_SYS_OPENAT2", None)
    monkeypatch.setattr(rootfs, "_openat2_usable", None)
    assert rootfs._can_openat2() is False
    assert rootfs._openat2_usable is False


def test_a_missing_rootfs_is_an_error_naming_the_container(tmp_path: Path) -> None:
    with pytest.raises(LockerError, match=f"root file system .* {NAME}"):
        read(tmp_path / "none", "/etc/hosts")


def test_without_proc_a_read_is_an_error_not_a_missing_file(root: Path, monkeypatch) -> None:
    real_open = os.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/self/fd/"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", no_proc)
    with pytest.raises(LockerError, match="needs /proc"):
        read(root, "/etc/hosts")
