"""The LXC runtime: drives LXC through its ``lxc-*`` commands.

Why commands and not the python3-lxc binding: the binding is not on PyPI
as a wheel (it builds against liblxc; Debian ships it as python3-lxc), it
runs liblxc inside Locker's own process (forks, a daemonizing ``start``,
failures reported as a bare False with the reason only in liblxc's log),
and it cannot be pointed at another network namespace per call. The
commands are LXC's stable interface, their stderr is the message an
administrator knows, and each call is isolated.

All ``lxc-*`` calls for a container must run in the network namespace the
container was started from: LXC reaches a running container's monitor
through an abstract unix socket, and those are per network namespace
(``lxc-info`` from elsewhere reports STOPPED). ``command_prefix`` exists for
tests, which pass ``locker.testing.lxchost.lxc_command_prefix(NS)``;
production needs none.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface, ip_address
from pathlib import Path

from locker.errors import LockerError
from locker.project import CloneSource, DownloadSource, Source, TemplateSource
from locker.runtime import ABSENT, FROZEN, RUNNING, STOPPED
from locker.runtime import lxcconfig, rootfs

_STATES = {"STOPPED": STOPPED, "ABORTING": STOPPED, "STARTING": RUNNING,
           "RUNNING": RUNNING, "THAWED": RUNNING, "STOPPING": RUNNING,
           "FREEZING": FROZEN, "FROZEN": FROZEN}
_BUSYBOX_INIT = "/etc/init.d/rcS"


def create_argv(name: str, source: Source, clone_from: str | None = None) -> list[str]:
    """The LXC command (without ``-P``) that creates container ``name``."""
    if isinstance(source, TemplateSource):
        extra = [arg for key, value in source.args for arg in (f"--{key}", value)]
        return ["lxc-create", "-n", name, "-t", source.name, *(["--", *extra] if extra else [])]
    if isinstance(source, CloneSource):
        return ["lxc-copy", "-n", clone_from or source.name, "-N", name]
    if isinstance(source, DownloadSource):
        variant = ["--variant", source.variant] if source.variant else []
        return ["lxc-create", "-n", name, "-t", "download", "--",
                "--dist", source.dist, "--release", source.release, "--arch", source.arch,
                *variant]
    raise TypeError(f"unknown container source {source!r}")


def host_uses_cgroup2(root: str = "/sys/fs/cgroup") -> bool:
    """True on a unified (cgroup v2 only) host; False on v1 and hybrid
    hosts, where controllers such as ``cpu.shares`` live in v1."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


class LxcRuntime:
    """``locker.runtime.Runtime`` on LXC. ``lxcpath`` None means LXC's
    default (``lxc-config lxc.lxcpath``)."""

    def __init__(self, lxcpath: str | None = None, command_prefix: Sequence[str] = ()) -> None:
        self._lxcpath = lxcpath
        self._prefix = tuple(command_prefix)

    @property
    def lxcpath(self) -> str:
        if self._lxcpath is None:
            out = self._run(["lxc-config", "lxc.lxcpath"], "", "find LXC's default lxcpath")
            self._lxcpath = out.strip()
        return self._lxcpath

    # -- lifecycle --------------------------------------------------------

    def state(self, name: str) -> str:
        if not self._config_path(name).exists():
            return ABSENT
        out = self._lxc(["lxc-info", "-n", name, "-sH"], name, "read the state")
        return _STATES.get(out.strip(), STOPPED)

    def create(self, name: str, source: Source, clone_from: str | None = None) -> None:
        what = "clone" if isinstance(source, CloneSource) else "create"
        self._lxc(create_argv(name, source, clone_from), name, what)

    def destroy(self, name: str) -> None:
        self._lxc(["lxc-destroy", "-n", name], name, "destroy")

    def start(self, name: str, timeout: float) -> None:
        self._read_config(name)  # a clear error for a missing container
        log = self._config_path(name).with_name("locker-start.log")
        try:
            log.write_text("")
        except OSError as err:
            raise LockerError(f"Cannot write {log} to start {name}: {err.strerror}.") from err
        try:
            self._lxc(["lxc-start", "-n", name, "-o", str(log), "-l", "ERROR"], name, "start")
            self._lxc(["lxc-wait", "-n", name, "-s", "RUNNING", "-t", _seconds(timeout)],
                      name, f"start within {timeout:g} seconds")
        except LockerError as err:
            raise LockerError(f"{err} LXC's log: {_tail(log)}") from err

    def stop(self, name: str, timeout: float) -> None:
        """Stop the container; lxc-stop asks init to halt and kills it
        when ``timeout`` runs out. A frozen container is thawed first, so
        that it can handle the halt signal. Stopping a stopped container
        does nothing."""
        state = self.state(name)
        if state == STOPPED:
            return
        if state == FROZEN:
            self.unfreeze(name)
        self._lxc(["lxc-stop", "-n", name, "-t", _seconds(timeout)], name, "stop")

    def freeze(self, name: str) -> None:
        self._lxc(["lxc-freeze", "-n", name], name, "freeze")

    def unfreeze(self, name: str) -> None:
        self._lxc(["lxc-unfreeze", "-n", name], name, "unfreeze")

    def apply_cgroup(self, name: str, settings: Sequence[tuple[str, str]]) -> None:
        for key, value in settings:
            self._lxc(["lxc-cgroup", "-n", name, key, value], name, f"set cgroup {key}={value}")

    def addresses(self, name: str) -> tuple[IPv4Address, ...]:
        """The IPv4 addresses the container has now (no waiting), empty
        when it does not run."""
        if self.state(name) not in (RUNNING, FROZEN):
            return ()
        out = self._lxc(["lxc-info", "-n", name, "-iH"], name, "read the addresses")
        found = []
        for word in out.split():
            try:
                found.append(ip_address(word))
            except ValueError:
                continue  # not an address: lxc-info's output is for people
        return tuple(a for a in found if isinstance(a, IPv4Address))

    # -- configuration ----------------------------------------------------

    def configure(self, name: str, bridge: str, address: IPv4Interface,
                  gateway: IPv4Address, mounts: Sequence[tuple[str, str]] = (),
                  cgroup: Sequence[tuple[str, str]] = (), hostname: str | None = None) -> None:
        """Rewrite Locker's block of the container's config file (see
        ``locker.runtime.lxcconfig``), create missing host directories of
        the bind mounts, and switch off a busybox init script's DHCP client
        (see ``rootfs.without_dhcp_client``) so the static address stays."""
        path = self._config_path(name)
        text = self._read_config(name)
        block = lxcconfig.render_block(bridge, address, gateway, mounts, cgroup, hostname,
                                       cgroup2=host_uses_cgroup2())
        new = lxcconfig.rewrite(text, block, replace_hostname=hostname is not None)
        try:
            for host_dir, _ in mounts:
                os.makedirs(host_dir, exist_ok=True)
            mode = path.stat().st_mode & 0o7777
            rootfs.atomic_write(path, new, mode)
        except OSError as err:
            raise LockerError(f"Cannot configure container {name}: {err}.") from err
        init = self.read_file(name, _BUSYBOX_INIT)
        fixed = rootfs.without_dhcp_client(init) if init is not None else None
        if fixed is not None:
            self.write_file(name, _BUSYBOX_INIT, fixed)

    def configured_address(self, name: str) -> IPv4Interface | None:
        try:
            text = self._config_path(name).read_text()
        except FileNotFoundError:
            return None
        return lxcconfig.read_address(text)

    # -- files in the rootfs ------------------------------------------------

    def read_file(self, name: str, path: str) -> str | None:
        return rootfs.read_text(self._rootfs(name), path, container=name)

    def write_file(self, name: str, path: str, text: str) -> None:
        rootfs.write_text(self._rootfs(name), path, text, container=name)

    # -- helpers ----------------------------------------------------------

    def _config_path(self, name: str) -> Path:
        return Path(self.lxcpath, name, "config")

    def _read_config(self, name: str) -> str:
        try:
            return self._config_path(name).read_text()
        except FileNotFoundError:
            raise LockerError(f"Container {name} does not exist in {self.lxcpath}; "
                              "create it first.") from None

    def _rootfs(self, name: str) -> str:
        text = self._read_config(name)
        found = lxcconfig.rootfs_dir(text)
        if found is None and lxcconfig.config_value(text, "lxc.rootfs.path"):
            raise LockerError(f"Container {name}: its root file system is not a plain "
                              "directory ('dir' storage), which Locker needs to edit its files.")
        return found or str(Path(self.lxcpath, name, "rootfs"))

    def _lxc(self, argv: list[str], name: str, what: str) -> str:
        return self._run([argv[0], "-P", self.lxcpath, *argv[1:]], name, what)

    def _run(self, argv: list[str], name: str, what: str) -> str:
        try:
            done = subprocess.run([*self._prefix, *argv], stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, check=False)
        except FileNotFoundError as err:
            raise LockerError(f"Cannot run {argv[0]}: {err.strerror}; install LXC.") from err
        if done.returncode != 0:
            who = f"Container {name}" if name else "LXC"
            detail = _last_lines(done.stderr or done.stdout) or f"exit status {done.returncode}"
            raise LockerError(f"{who}: could not {what}: {detail}")
        return done.stdout


def _seconds(timeout: float) -> str:
    return str(max(0, math.ceil(timeout)))


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[-count:])


def _tail(log: Path) -> str:
    """The first errors of an ``lxc-start`` log (the cause; the last ones
    only say that the start failed), without LXC's source locations."""
    try:
        errors = [line.rsplit(" - ", 1)[-1].strip()
                  for line in log.read_text().splitlines() if " ERROR " in line]
    except OSError:
        errors = []
    return "; ".join(errors[:2]) + "." if errors else "(empty)."
