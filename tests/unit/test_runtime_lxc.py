"""``LxcRuntime`` against fake ``lxc-*`` commands: small shell scripts on
PATH that print what a test wants, fail, or hang. No LXC, no root."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from locker.errors import LockerError
from locker.project import CgroupSetting, TemplateSource
from locker.runtime import (ABSENT, FROZEN, RUNNING, STOPPED, UNKNOWN, CommandTimedOut,
                            lxc, state_reason)
from locker.runtime.lxc import LxcRuntime
from locker.runtime.rootfs import ContainerFileRefused

NAME = "p_web"
HANG = 'sleep 60 & echo $! > "$FAKE_LOG.child"; wait\n'


class Fakes:
    """Fake LXC commands in a directory put first on PATH; each call is
    logged as one line ``COMMAND ARG ...`` in ``log``."""

    def __init__(self, bin_dir: Path, log: Path) -> None:
        self.bin_dir = bin_dir
        self.log = log

    def add(self, command: str, body: str) -> None:
        script = self.bin_dir / command
        script.write_text(f'#!/bin/sh\necho "$(basename "$0") $*" >> "$FAKE_LOG"\n{body}')
        script.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def hung_child(self) -> int:
        return int(Path(f"{self.log}.child").read_text())


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch) -> Fakes:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return Fakes(bin_dir, log)


@pytest.fixture
def lxcpath(tmp_path: Path) -> Path:
    path = tmp_path / "lxc"
    (path / NAME / "rootfs" / "etc").mkdir(parents=True)
    (path / NAME / "config").write_text(f"lxc.rootfs.path = dir:{path / NAME / 'rootfs'}\n")
    return path


@pytest.fixture
def runtime(lxcpath: Path, fakes: Fakes) -> LxcRuntime:
    return LxcRuntime(str(lxcpath), query_seconds=0.5, margin_seconds=0.5)


def assert_gone(pid: int) -> None:
    """The process is dead (gone or a zombie) within two seconds."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid}, started by the hung command, still runs")


def timed(call: Callable[[], object]) -> tuple[object, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


# -- states ------------------------------------------------------------------------

@pytest.mark.parametrize("printed, state", [
    ("STOPPED", STOPPED), ("RUNNING", RUNNING), ("FROZEN", FROZEN), ("STARTING", RUNNING),
    ("STOPPING", RUNNING), ("ABORTING", STOPPED), ("FREEZING", FROZEN), ("THAWED", RUNNING),
    ("  RUNNING\n", RUNNING),
])
def test_known_states(runtime: LxcRuntime, fakes: Fakes, printed: str, state: str) -> None:
    fakes.add("lxc-info", f"printf '{printed}\\n'\n")
    assert runtime.state(NAME) == state
    assert state_reason(runtime.state(NAME)) is None
    assert fakes.calls()[0].split() == ["lxc-info", "-P", runtime.lxcpath, "-n", NAME, "-sH"]


def test_a_container_without_config_is_absent(runtime: LxcRuntime, fakes: Fakes) -> None:
    assert runtime.state("p_other") == ABSENT
    assert fakes.calls() == []


@pytest.mark.parametrize("printed", ["BOGUS", "", "RUNNING\\nSTOPPED", "\\033[31mRUNNING"])
def test_an_unknown_state_text_is_unknown_not_stopped(runtime: LxcRuntime, fakes: Fakes,
                                                      printed: str) -> None:
    fakes.add("lxc-info", f"printf '{printed}\\n'\n")
    state = runtime.state(NAME)
    assert state == UNKNOWN and state != STOPPED
    reason = state_reason(state)
    assert reason is not None and NAME in reason and "lxc-info" in reason
    assert "\x1b" not in reason


def test_a_failing_lxc_info_is_unknown_with_its_message(runtime: LxcRuntime,
                                                        fakes: Fakes) -> None:
    fakes.add("lxc-info", "echo 'Failed to get state: monitor gone' >&2\nexit 1\n")
    state = runtime.state(NAME)
    assert state == UNKNOWN
    assert "monitor gone" in (state_reason(state) or "")


def test_a_hung_lxc_info_is_unknown_after_its_timeout(runtime: LxcRuntime,
                                                      fakes: Fakes) -> None:
    fakes.add("lxc-info", HANG)
    state, took = timed(lambda: runtime.state(NAME))
    assert state == UNKNOWN and took < 5
    reason = state_reason(state) or ""
    assert "lxc-info" in reason and "0.5 seconds" in reason and "killed" in reason
    assert_gone(fakes.hung_child())


def test_an_unknown_state_has_no_addresses(runtime: LxcRuntime, fakes: Fakes) -> None:
    fakes.add("lxc-info", "exit 1\n")
    assert runtime.addresses(NAME) == ()


def test_addresses_of_a_running_container(runtime: LxcRuntime, fakes: Fakes) -> None:
    fakes.add("lxc-info", 'case "$*" in *-sH*) echo RUNNING;; '
                          '*) printf "10.1.1.2\\nfe80::1\\nnot-an-address\\n";; esac\n')
    assert runtime.addresses(NAME) == (IPv4Address("10.1.1.2"),)


# -- survey: one lxc-ls for all containers ---------------------------------------------

def add_container(lxcpath: Path, name: str) -> None:
    (lxcpath / name).mkdir()
    (lxcpath / name / "config").write_text("lxc.uts.name = x\n")


def test_a_survey_asks_lxc_ls_once_for_all_containers(runtime: LxcRuntime, fakes: Fakes,
                                                      lxcpath: Path) -> None:
    add_container(lxcpath, "p_db")
    add_container(lxcpath, "p_cache")
    fakes.add("lxc-ls", "printf 'NAME    STATE   IPV4\n"
                        "p_web   RUNNING 10.1.1.2, 10.0.3.7\n"
                        "p_db    STOPPED -\n"
                        "p_cache FROZEN  10.1.1.4\n'\n")
    found = runtime.survey([NAME, "p_db", "p_cache", "p_gone"], addresses=True)
    assert found == {
        NAME: (RUNNING, (IPv4Address("10.1.1.2"), IPv4Address("10.0.3.7"))),
        "p_db": (STOPPED, ()),
        "p_cache": (FROZEN, (IPv4Address("10.1.1.4"),)),
        "p_gone": (ABSENT, ()),
    }
    calls = fakes.calls()
    assert len(calls) == 1 and calls[0].split()[:6] == [
        "lxc-ls", "-P", runtime.lxcpath, "-f", "-F", "NAME,STATE,IPV4"]
    assert calls[0].split()[-2:] == ["--filter", "^(p_web|p_db|p_cache)$"]


def test_a_survey_of_states_only_does_not_ask_for_addresses(runtime: LxcRuntime,
                                                            fakes: Fakes) -> None:
    fakes.add("lxc-ls", "printf 'NAME  STATE\np_web RUNNING\n'\n")
    assert runtime.survey([NAME]) == {NAME: (RUNNING, ())}
    assert "NAME,STATE " in fakes.calls()[0] + " "


@pytest.mark.parametrize("listed, why", [("p_web BOGUS -", "'BOGUS'"),
                                         ("p_other RUNNING -", "did not list it")])
def test_a_container_lxc_ls_does_not_show_well_is_unknown_not_stopped(
        runtime: LxcRuntime, fakes: Fakes, listed: str, why: str) -> None:
    fakes.add("lxc-ls", f"printf 'NAME STATE IPV4\\n{listed}\\n'\n")
    state = runtime.survey([NAME], addresses=True)[NAME].state
    assert state == UNKNOWN and state != STOPPED
    reason = state_reason(state) or ""
    assert NAME in reason and why in reason


def test_a_failing_lxc_ls_asks_each_container_on_its_own(runtime: LxcRuntime, fakes: Fakes,
                                                         lxcpath: Path) -> None:
    add_container(lxcpath, "p_db")
    fakes.add("lxc-ls", "echo 'lxc-ls: broken' >&2\nexit 1\n")
    fakes.add("lxc-info", 'case "$*" in *p_db*) exit 1;; *-sH*) echo RUNNING;; '
                          '*) echo 10.1.1.2;; esac\n')
    found = runtime.survey([NAME, "p_db"], addresses=True)
    assert found[NAME] == (RUNNING, (IPv4Address("10.1.1.2"),))
    assert found["p_db"].state == UNKNOWN


def test_a_hung_lxc_ls_is_killed_and_each_container_asked(runtime: LxcRuntime,
                                                          fakes: Fakes) -> None:
    fakes.add("lxc-ls", HANG)
    fakes.add("lxc-info", "echo STOPPED\n")
    assert runtime.survey([NAME]) == {NAME: (STOPPED, ())}
    assert_gone(fakes.hung_child())


# -- bounded commands -----------------------------------------------------------------

@pytest.mark.parametrize("command, call", [
    ("lxc-freeze", lambda rt: rt.freeze(NAME)),
    ("lxc-unfreeze", lambda rt: rt.unfreeze(NAME)),
    ("lxc-cgroup", lambda rt: rt.apply_cgroup(NAME, [CgroupSetting("pids.max", "10")])),
])
def test_a_hung_command_is_killed_and_named(runtime: LxcRuntime, fakes: Fakes, command: str,
                                            call: Callable[[LxcRuntime], object]) -> None:
    fakes.add(command, HANG)
    with pytest.raises(CommandTimedOut) as timed_out:
        call(runtime)
    assert isinstance(timed_out.value, LockerError)
    assert timed_out.value.command[0] == command and timed_out.value.timeout == 0.5
    message = str(timed_out.value)
    assert NAME in message and command in message and "0.5 seconds" in message
    assert_gone(fakes.hung_child())


def test_start_waits_for_the_callers_timeout_plus_the_margin(runtime: LxcRuntime,
                                                             fakes: Fakes) -> None:
    fakes.add("lxc-start", "exit 0\n")
    fakes.add("lxc-wait", HANG)
    start = time.monotonic()
    with pytest.raises(CommandTimedOut, match=r"lxc-wait .* within 1\.5 seconds") as timed_out:
        runtime.start(NAME, 1.0)
    assert 1.4 < time.monotonic() - start < 6
    assert timed_out.value.timeout == 1.5
    assert "LXC's log" in str(timed_out.value)
    assert_gone(fakes.hung_child())
    assert [c.split()[0] for c in fakes.calls()] == ["lxc-start", "lxc-wait"]
    assert fakes.calls()[1].split()[-2:] == ["-t", "1"]


def test_a_failed_start_says_what_lxc_logged(runtime: LxcRuntime, fakes: Fakes,
                                             lxcpath: Path) -> None:
    log = lxcpath / NAME / "locker-start.log"
    fakes.add("lxc-start", f"echo 'lxc-start p_web 2026 ERROR network - net.c:1 - no bridge "
                           f"nosuchbr' > {log}\necho 'lxc-start p_web 2026 ERROR start - "
                           f"start.c:2 - Failed to spawn' >> {log}\n" + BOILERPLATE)
    with pytest.raises(LockerError) as failed:
        runtime.start(NAME, 1.0)
    assert str(failed.value) == (f"Container {NAME}: could not start: no bridge nosuchbr "
                                 f"(LXC's log: {log}; -v shows all LXC printed)")
    assert len(failed.value.details) == 4


BOILERPLATE = """cat >&2 <<'END'
lxc-start: p_web: lxccontainer.c: wait_on_daemonized_start: 870 Received container state "ABORTING" instead of "RUNNING"
lxc-start: p_web: tools/lxc_start.c: main: 306 The container failed to start
lxc-start: p_web: tools/lxc_start.c: main: 309 To get more details, run the container in foreground mode
lxc-start: p_web: tools/lxc_start.c: main: 311 Additional information can be obtained by setting the --logfile and --logpriority options
END
exit 1
"""


def test_a_failed_start_without_a_log_says_lxcs_cause(runtime: LxcRuntime, fakes: Fakes,
                                                      lxcpath: Path) -> None:
    fakes.add("lxc-start", "echo 'lxc-start: p_web: conf.c: run: 1 No such bridge' >&2\n"
                           + BOILERPLATE)
    with pytest.raises(LockerError, match=r"could not start: No such bridge \(LXC's log: "):
        runtime.start(NAME, 1.0)


def test_a_failed_create_is_one_line_with_its_cause(runtime: LxcRuntime, fakes: Fakes) -> None:
    from locker.project import DownloadSource
    fakes.add("lxc-create", "echo 'ERROR: Unable to fetch GPG key from keyserver' >&2\n"
                            "echo 'lxc-create: p_web: lxccontainer.c: create_run_template: 1627 "
                            "Failed to create container from template' >&2\nexit 1\n")
    with pytest.raises(LockerError) as failed:
        runtime.create("p_new", DownloadSource("debian", "bookworm", "amd64"))
    assert str(failed.value) == ("Container p_new: could not create: ERROR: Unable to fetch "
                                 "GPG key from keyserver")


def test_a_hung_stop_is_killed(runtime: LxcRuntime, fakes: Fakes) -> None:
    fakes.add("lxc-info", "echo RUNNING\n")
    fakes.add("lxc-stop", HANG)
    with pytest.raises(CommandTimedOut, match=r"lxc-stop .* within 0\.7 seconds"):
        runtime.stop(NAME, 0.2)
    assert_gone(fakes.hung_child())


@pytest.mark.parametrize("printed, stops", [
    ("STOPPED", False), ("RUNNING", True), ("BOGUS", True), ("FROZEN", True),
])
def test_stop_asks_lxc_unless_the_container_is_known_to_be_stopped(
        runtime: LxcRuntime, fakes: Fakes, printed: str, stops: bool) -> None:
    fakes.add("lxc-info", f"echo {printed}\n")
    fakes.add("lxc-stop", "exit 0\n")
    fakes.add("lxc-unfreeze", "exit 0\n")
    runtime.stop(NAME, 3)
    commands = [call.split()[0] for call in fakes.calls()]
    assert ("lxc-stop" in commands) == stops
    assert ("lxc-unfreeze" in commands) == (printed == "FROZEN")


def test_create_and_destroy_have_their_own_limits(runtime: LxcRuntime, fakes: Fakes,
                                                  monkeypatch) -> None:
    monkeypatch.setattr(lxc, "CREATE_SECONDS", 0.3)
    monkeypatch.setattr(lxc, "DESTROY_SECONDS", 0.3)
    fakes.add("lxc-create", HANG)
    with pytest.raises(CommandTimedOut, match="could not create.*lxc-create"):
        runtime.create(NAME, TemplateSource("busybox"))
    assert_gone(fakes.hung_child())
    fakes.add("lxc-destroy", "exit 0\n")
    runtime.destroy(NAME)
    assert fakes.calls()[-1].split() == ["lxc-destroy", "-P", runtime.lxcpath, "-n", NAME]


def test_the_default_lxcpath_is_asked_with_a_limit(fakes: Fakes) -> None:
    fakes.add("lxc-config", HANG)
    with pytest.raises(CommandTimedOut, match="LXC: could not find LXC's default lxcpath"):
        LxcRuntime(query_seconds=0.3).state(NAME)
    fakes.add("lxc-config", "echo /srv/lxc\n")
    assert LxcRuntime().lxcpath == "/srv/lxc"


def test_a_missing_lxc_says_to_install_it(runtime: LxcRuntime, monkeypatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LockerError, match="Cannot run lxc-freeze.*install LXC"):
        runtime.freeze(NAME)


def test_lxc_messages_are_printable(runtime: LxcRuntime, fakes: Fakes) -> None:
    fakes.add("lxc-freeze", "printf 'bad \\033]0;PWNED\\007 thing\\n' >&2\nexit 1\n")
    with pytest.raises(LockerError) as failed:
        runtime.freeze(NAME)
    assert "\x1b" not in str(failed.value) and "\\x1b]0;PWNED\\x07" in str(failed.value)


# -- configuration and files --------------------------------------------------------

def test_configure_writes_the_block_and_switches_off_udhcpc(runtime: LxcRuntime,
                                                           lxcpath: Path) -> None:
    rootfs = lxcpath / NAME / "rootfs"
    (rootfs / "etc" / "init.d").mkdir()
    (rootfs / "etc" / "init.d" / "rcS").write_text("#!/bin/sh\n/bin/udhcpc\n")
    address = IPv4Interface("10.1.1.2/24")
    runtime.configure(NAME, "locker_p", address, IPv4Address("10.1.1.1"), hostname="web")
    assert runtime.configured_address(NAME) == address
    assert "lxc.uts.name = web" in (lxcpath / NAME / "config").read_text()
    assert "# disabled by Locker" in (rootfs / "etc" / "init.d" / "rcS").read_text()
    assert runtime.configured_address("p_other") is None
    with pytest.raises(LockerError, match="p_other does not exist"):
        runtime.start("p_other", 1)


def test_files_are_refused_naming_the_container(runtime: LxcRuntime, lxcpath: Path) -> None:
    os.mkfifo(lxcpath / NAME / "rootfs" / "etc" / "hosts")
    with pytest.raises(ContainerFileRefused, match=f"Container {NAME}: .*/etc/hosts"):
        runtime.read_file(NAME, "/etc/hosts")
    runtime.write_file(NAME, "/etc/hostname", "web\n")
    assert runtime.read_file(NAME, "/etc/hostname") == "web\n"


def test_a_rootfs_that_is_not_a_directory_is_refused(runtime: LxcRuntime,
                                                     lxcpath: Path) -> None:
    (lxcpath / NAME / "config").write_text("lxc.rootfs.path = overlay:/a:/b\n")
    with pytest.raises(LockerError, match="not a plain directory"):
        runtime.read_file(NAME, "/etc/hosts")


def test_a_descendant_keeping_the_pipes_does_not_hold_up_the_timeout(
        runtime: LxcRuntime, fakes: Fakes, monkeypatch) -> None:
    """A process that left the command's group (setsid) keeps its output
    pipes open: after the kill, they are given up on."""
    monkeypatch.setattr(lxc, "_REAP_SECONDS", 0.3)
    fakes.add("lxc-freeze", 'setsid sleep 60 & echo $! > "$FAKE_LOG.escaped"\n' + HANG)
    escaped = Path(f"{fakes.log}.escaped")
    try:
        start = time.monotonic()
        with pytest.raises(CommandTimedOut):
            runtime.freeze(NAME)
        assert time.monotonic() - start < 4
        assert_gone(fakes.hung_child())
    finally:
        if escaped.exists():  # the one process the group kill cannot reach
            os.kill(int(escaped.read_text()), signal.SIGKILL)


def test_an_interrupted_call_kills_the_command(runtime: LxcRuntime, fakes: Fakes) -> None:
    fakes.add("lxc-freeze", HANG)

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            LxcRuntime(runtime.lxcpath, query_seconds=30).freeze(NAME)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert_gone(fakes.hung_child())


def test_the_runtime_does_not_import_the_project_files_grammar() -> None:
    """The runtime takes value types (``locker.project``); the project
    file's grammar and YAML stay with ``validate`` and the CLI (issue 15)."""
    import subprocess
    import sys

    code = ("import sys, locker.runtime, locker.runtime.lxc, locker.runtime.rootfs, "
            "locker.runtime.lxcconfig\n"
            "print(' '.join(n for n in ('locker.projectfile', 'locker.projectsyntax', "
            "'locker.yamlnodes', 'yaml') if n in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "", f"the runtime imports {done.stdout.strip()}"
