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

Every command has a time limit (``QUERY_SECONDS`` for the quick ones; for
start and stop the caller's timeout plus ``MARGIN_SECONDS``). A command
still running then is killed with its whole process group (each runs in a
session of its own) and the call raises ``CommandTimedOut``.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address
from pathlib import Path

from locker.errors import LockerError
from locker.printable import printable
from locker.project import (CgroupSetting, CloneSource, DownloadSource, Source, TemplateSource,
                            VolumeSpec)
from locker.runtime import (ABSENT, FROZEN, RUNNING, STOPPED, CommandTimedOut, Observed,
                            UnknownState, lxcconfig, rootfs)

_STATES = {"STOPPED": STOPPED, "ABORTING": STOPPED, "STARTING": RUNNING,
           "RUNNING": RUNNING, "THAWED": RUNNING, "STOPPING": RUNNING,
           "FREEZING": FROZEN, "FROZEN": FROZEN}
_BUSYBOX_INIT = "/etc/init.d/rcS"

#: lxc-info, lxc-config, lxc-cgroup, lxc-freeze, lxc-unfreeze: they answer
#: at once or hang on a stuck container or monitor.
QUERY_SECONDS = 10.0
#: lxc-create and lxc-copy: a ``download`` fetches an image first.
CREATE_SECONDS = 1800.0
DESTROY_SECONDS = 120.0
#: Added to the caller's timeout for lxc-start, lxc-wait and lxc-stop,
#: for LXC's own work around the wait.
MARGIN_SECONDS = 30.0
#: How long a killed command's pipes are drained before giving up on them.
_REAP_SECONDS = 5.0


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
    default (``lxc-config lxc.lxcpath``). ``query_seconds`` and
    ``margin_seconds`` replace ``QUERY_SECONDS`` and ``MARGIN_SECONDS``."""

    def __init__(self, lxcpath: str | None = None, command_prefix: Sequence[str] = (),
                 query_seconds: float = QUERY_SECONDS,
                 margin_seconds: float = MARGIN_SECONDS) -> None:
        self._lxcpath = lxcpath
        self._prefix = tuple(command_prefix)
        self._query = query_seconds
        self._margin = margin_seconds

    @property
    def lxcpath(self) -> str:
        if self._lxcpath is None:
            out = self._run(["lxc-config", "lxc.lxcpath"], "", "find LXC's default lxcpath",
                            self._query)
            self._lxcpath = out.strip()
        return self._lxcpath

    # -- lifecycle --------------------------------------------------------

    def state(self, name: str) -> str:
        """ABSENT without a config file; UNKNOWN (with the reason) when
        lxc-info fails, times out or prints a state not in ``_STATES``."""
        if not self._config_path(name).exists():
            return ABSENT
        try:
            out = self._lxc(["lxc-info", "-n", name, "-sH"], name, "read the state",
                            self._query)
        except LockerError as err:
            return UnknownState(str(err))
        return self._known_state(name, out.strip(), "lxc-info")

    @staticmethod
    def _known_state(name: str, found: str, command: str) -> str:
        if found in _STATES:
            return _STATES[found]
        shown = printable(found[:80]) if found else "nothing"
        return UnknownState(f"Container {name}: {command} printed {shown!r} for its state, "
                            "which Locker does not know; check the container with "
                            f"lxc-info -n {name}.")

    def survey(self, names: Sequence[str], addresses: bool = False) -> dict[str, Observed]:
        """One ``lxc-ls -f`` for all of ``names`` (what ``lxc-ls -f`` costs
        for them, instead of one or two ``lxc-info`` each). When lxc-ls
        fails or times out, each container is asked on its own, so that
        one stuck container shows as UNKNOWN without hiding the others."""
        present = [name for name in names if self._config_path(name).exists()]
        found = {name: Observed(ABSENT) for name in names if name not in present}
        if not present:
            return found
        columns = "NAME,STATE,IPV4" if addresses else "NAME,STATE"
        try:
            out = self._lxc(["lxc-ls", "-f", "-F", columns, "--filter", _exactly(present)],
                            "", "list the containers' states", self._query)
        except LockerError:
            return {**found, **{name: self._observe(name, addresses) for name in present}}
        rows = _fancy_rows(out)
        for name in present:
            row = rows.get(name)
            if row is None:
                found[name] = Observed(UnknownState(
                    f"Container {name}: lxc-ls -f did not list it although its config file "
                    f"is there; check it with lxc-info -n {name}."))
                continue
            state = self._known_state(name, row[0], "lxc-ls -f")
            ips = _ipv4s(row[1]) if addresses and state in (RUNNING, FROZEN) else ()
            found[name] = Observed(state, ips)
        return found

    def _observe(self, name: str, addresses: bool) -> Observed:
        state = self.state(name)
        if not addresses or state not in (RUNNING, FROZEN):
            return Observed(state)
        try:
            return Observed(state, self.addresses(name))
        except LockerError as err:
            return Observed(UnknownState(str(err)))

    def names(self) -> tuple[str, ...]:
        """Every container of the lxcpath (a directory with a config file)."""
        try:
            entries = sorted(os.scandir(self.lxcpath), key=lambda e: e.name)
        except OSError:
            return ()
        return tuple(e.name for e in entries if os.path.isfile(os.path.join(e.path, "config")))

    def create(self, name: str, source: Source, clone_from: str | None = None) -> None:
        """Create the container. Interrupted (a signal), the command is
        killed and what it left of the container is destroyed, so that the
        next ``create`` starts afresh rather than finding it "exists
        already"."""
        what = "clone" if isinstance(source, CloneSource) else "create"
        try:
            self._lxc(create_argv(name, source, clone_from), name, what, CREATE_SECONDS)
        except LockerError:
            raise
        except BaseException:
            if Path(self.lxcpath, name).exists():
                try:
                    self.destroy(name)
                except BaseException:  # the second signal: leave it to lxc-destroy by hand
                    pass
            raise

    def destroy(self, name: str) -> None:
        self._lxc(["lxc-destroy", "-n", name], name, "destroy", DESTROY_SECONDS)

    def start(self, name: str, timeout: float) -> None:
        self._read_config(name)  # a clear error for a missing container
        log = self._config_path(name).with_name("locker-start.log")
        try:
            log.write_text("")
        except OSError as err:
            raise LockerError(f"Cannot write {log} to start {name}: {err.strerror}.") from err
        try:
            self._lxc(["lxc-start", "-n", name, "-o", str(log), "-l", "ERROR"], name, "start",
                      timeout + self._margin)
            self._lxc(["lxc-wait", "-n", name, "-s", "RUNNING", "-t", _seconds(timeout)],
                      name, f"start within {timeout:g} seconds", timeout + self._margin)
        except CommandTimedOut as err:
            raise CommandTimedOut(f"{err} LXC's log: {_tail(log)}", err.command,
                                  err.timeout) from err
        except LxcFailed as err:
            # one line: the cause (the log's first error, else LXC's own line)
            # and where the log is; -v shows all LXC printed
            cause = _first_error(log) or err.cause
            failed = LxcFailed(f"Container {name}: could not start: {cause} (LXC's log: "
                               f"{log}; -v shows all LXC printed)", err.cause, err.output)
            raise failed from err

    def stop(self, name: str, timeout: float) -> None:
        """Stop the container; lxc-stop asks init to halt and kills it
        when ``timeout`` runs out. A frozen container is thawed first, so
        that it can handle the halt signal. Stopping a stopped container
        does nothing; one in an UNKNOWN state is asked to stop all the
        same."""
        state = self.state(name)
        if state == STOPPED:
            return
        if state == FROZEN:
            self.unfreeze(name)
        self._lxc(["lxc-stop", "-n", name, "-t", _seconds(timeout)], name, "stop",
                  timeout + self._margin)

    def freeze(self, name: str) -> None:
        self._lxc(["lxc-freeze", "-n", name], name, "freeze", self._query)

    def unfreeze(self, name: str) -> None:
        self._lxc(["lxc-unfreeze", "-n", name], name, "unfreeze", self._query)

    def apply_cgroup(self, name: str, settings: Sequence[CgroupSetting]) -> None:
        for setting in settings:
            self._lxc(["lxc-cgroup", "-n", name, setting.key, setting.value], name,
                      f"set cgroup {setting}", self._query)

    def addresses(self, name: str) -> tuple[IPv4Address, ...]:
        """The IPv4 addresses the container has now (no waiting), empty
        when it does not run or its state is UNKNOWN."""
        if self.state(name) not in (RUNNING, FROZEN):
            return ()
        out = self._lxc(["lxc-info", "-n", name, "-iH"], name, "read the addresses",
                        self._query)
        return _ipv4s(out)

    # -- configuration ----------------------------------------------------

    def configure(self, name: str, bridge: str, address: IPv4Interface,
                  gateway: IPv4Address, mounts: Sequence[VolumeSpec] = (),
                  cgroup: Sequence[CgroupSetting] = (), hostname: str | None = None,
                  address6: IPv6Interface | None = None,
                  gateway6: IPv6Address | None = None) -> None:
        """Rewrite Locker's block of the container's config file (see
        ``locker.runtime.lxcconfig``), create missing host directories of
        the bind mounts, and switch off a busybox init script's DHCP client
        (see ``rootfs.without_dhcp_client``) so the static address stays."""
        path = self._config_path(name)
        text = self._read_config(name)
        block = lxcconfig.render_block(bridge, address, gateway, mounts, cgroup, hostname,
                                       cgroup2=host_uses_cgroup2(),
                                       console_log=str(self._console_log(name)),
                                       address6=address6, gateway6=gateway6)
        new = lxcconfig.rewrite(text, block, replace_hostname=hostname is not None)
        try:
            for mount in mounts:
                os.makedirs(mount.host_dir, exist_ok=True)
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

    # -- at the keyboard ----------------------------------------------------

    def attach(self, name: str, command: Sequence[str] = ()) -> int:
        """Run ``command`` (none: a shell) in the running container with
        ``lxc-attach``, on the user's terminal; its exit status."""
        return self._interactive(["lxc-attach", "-n", name,
                                  *(["--", *command] if command else [])], name)

    def console(self, name: str) -> int:
        """The container's console (``lxc-console``; Ctrl-a q leaves it)."""
        return self._interactive(["lxc-console", "-n", name], name)

    def console_log(self, name: str, limit: int = 1 << 20) -> str | None:
        """The end (at most ``limit`` bytes) of the console log LXC writes
        for the container since Locker configured it; None without one."""
        path = self._console_log(name)
        try:
            with open(path, "rb") as log:
                size = os.fstat(log.fileno()).st_size
                log.seek(max(0, size - limit))
                data = log.read(limit)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise LockerError(f"Cannot read {path}: {err.strerror}.") from err
        return data.decode("utf-8", errors="replace")

    def console_log_path(self, name: str) -> Path:
        return self._console_log(name)

    def _console_log(self, name: str) -> Path:
        return Path(self.lxcpath, name, "console.log")

    def _interactive(self, argv: list[str], name: str) -> int:
        """Run an LXC command on the user's terminal. While it runs, the
        terminal's Ctrl-C is the command's (it is in the same process
        group), and a SIGTERM to Locker is passed on to it."""
        full = [*self._prefix, argv[0], "-P", self.lxcpath, *argv[1:]]
        try:
            child = subprocess.Popen(full)
        except FileNotFoundError as err:
            raise LockerError(f"Cannot run {argv[0]}: {err.strerror}; install LXC.") from err
        previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                    signal.SIGTERM: signal.signal(
                        signal.SIGTERM, lambda number, frame: child.send_signal(number))}
        try:
            status = child.wait()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        return 128 - status if status < 0 else status

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

    def _lxc(self, argv: list[str], name: str, what: str, timeout: float) -> str:
        return self._run([argv[0], "-P", self.lxcpath, *argv[1:]], name, what, timeout)

    def _run(self, argv: list[str], name: str, what: str, timeout: float) -> str:
        """The command's standard output. It runs in a session of its own,
        so that on timeout it is killed with all it started."""
        who = f"Container {name}" if name else "LXC"
        try:
            child = subprocess.Popen([*self._prefix, *argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, errors="replace", start_new_session=True)
        except FileNotFoundError as err:
            raise LockerError(f"Cannot run {argv[0]}: {err.strerror}; install LXC.") from err
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(child)
            raise CommandTimedOut(
                f"{who}: could not {what}: {' '.join(argv)} did not finish within "
                f"{timeout:g} seconds and was killed; check that LXC answers "
                f"(lxc-ls -f) and try again.", argv, timeout) from None
        except BaseException:  # Ctrl-C: do not leave the command running
            _kill(child)
            raise
        if child.returncode != 0:
            output = (err or out).strip()
            cause = printable(_cause(output) or f"{argv[0]} exited with status "
                                                f"{child.returncode} and printed nothing")
            raise LxcFailed(f"{who}: could not {what}: {cause}", cause,
                            "\n".join(printable(line) for line in output.splitlines()))
        return out


class LxcFailed(LockerError):
    """An LXC command failed: the message has the cause in one line;
    ``details`` holds everything it printed (shown with ``-v``)."""

    def __init__(self, message: str, cause: str, output: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.output = output
        self.details = [line for line in output.splitlines() if line.strip()]


#: ``lxc-start: web: tools/lxc_start.c: main: 306 `` before each message.
_LXC_PREFIX = re.compile(r"^lxc-[\w-]+: [^:]*: [^:]*\.c: \w+: \d+ ")
#: LXC's lines that say that it failed, not why.
_BOILERPLATE = re.compile(
    r"foreground mode|--logfile and --logpriority|container failed to start|"
    r'instead of "RUNNING"|Failed to create container|Failed to clone|Error creating '
    r"container|Failed to (?:start|stop|destroy) container", re.IGNORECASE)


def _exactly(names: Sequence[str]) -> str:
    """A regular expression (POSIX extended, as lxc-ls takes it) matching
    just these names. LXC names of Locker's containers hold only letters,
    digits, ``-`` and ``_``, none of them special there; any other
    character is escaped with a bracket expression."""
    def literal(name: str) -> str:
        return "".join(c if c.isalnum() or c in "-_" else f"[{c}]" for c in name)
    return "^(" + "|".join(literal(name) for name in names) + ")$"


def _fancy_rows(out: str) -> dict[str, tuple[str, str]]:
    """``lxc-ls -f -F NAME,STATE[,IPV4]`` output by name: (state, the rest
    of the line). The first line is the header; IPV4 is ``-`` or addresses
    separated by commas."""
    rows = {}
    for line in out.splitlines()[1:]:
        fields = line.split(None, 2)
        if len(fields) >= 2:
            rows[fields[0]] = (fields[1], fields[2] if len(fields) > 2 else "")
    return rows


def _ipv4s(text: str) -> tuple[IPv4Address, ...]:
    found = []
    for word in text.replace(",", " ").split():
        try:
            found.append(ip_address(word))
        except ValueError:
            continue  # not an address: lxc's output is for people
    return tuple(a for a in found if isinstance(a, IPv4Address))


def _cause(output: str) -> str:
    """The line of an LXC command's output that says why it failed: the
    first that is not boilerplate, without LXC's source location."""
    lines = [_LXC_PREFIX.sub("", line).strip() for line in output.splitlines()]
    lines = [line for line in lines if line]
    causes = [line for line in lines if not _BOILERPLATE.search(line)]
    return (causes or lines or [""])[0]



def _kill(child: subprocess.Popen[str]) -> None:
    """Kill the command's process group and reap it. A descendant that
    left the group may still hold the pipes: they are given up on after
    ``_REAP_SECONDS``."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        child.communicate(timeout=_REAP_SECONDS)
    except subprocess.TimeoutExpired:
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    child.wait()


def _seconds(timeout: float) -> str:
    return str(max(0, math.ceil(timeout)))


def _first_error(log: Path) -> str | None:
    """The first error of an ``lxc-start`` log (the cause; the later ones
    only say that the start failed), without LXC's source location."""
    try:
        for line in log.read_text(errors="replace").splitlines():
            if " ERROR " in line:
                return printable(line.rsplit(" - ", 1)[-1].strip())
    except OSError:
        pass
    return None


def _tail(log: Path) -> str:
    """The first errors of an ``lxc-start`` log (the cause; the last ones
    only say that the start failed), without LXC's source locations."""
    try:
        errors = [line.rsplit(" - ", 1)[-1].strip()
                  for line in log.read_text().splitlines() if " ERROR " in line]
    except OSError:
        errors = []
    return "; ".join(errors[:2]) + "." if errors else "(empty)."
