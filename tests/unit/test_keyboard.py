"""Issue 12, "At the keyboard": names, hostnames, the words of every
command, and the compose-style commands, over the in-memory backends."""

from __future__ import annotations

from pathlib import Path

from locker.ops import lifecycle
from locker.ops.lifecycle import SELF_MARK
from test_cli import clean_environment, fake_backends  # noqa: F401  (fixtures)
from test_ops import Env, env, make_env  # noqa: F401  (fixtures)


def test_a_container_without_fqdn_is_named_after_itself(env: Env) -> None:  # noqa: F811
    lifecycle.start(env.ctx, env.ctx.select([]))
    cache = env.lxc("cache")
    assert cache.config["hostname"] == "cache"
    assert cache.files["/etc/hostname"] == "cache\n"
    ip = cache.config["address"].ip
    lines = cache.files["/etc/hosts"].splitlines()
    assert lines[:2] == ["127.0.0.1\tlocalhost", f"{ip}\tcache\t{SELF_MARK}"]
    # a container with an fqdn keeps its fqdn's first label
    assert env.lxc("web").config["hostname"] == "web"
    assert SELF_MARK not in env.lxc("web").files["/etc/hosts"]


def test_the_own_line_survives_links_and_rmlinks(env: Env) -> None:  # noqa: F811
    lifecycle.start(env.ctx, env.ctx.select([]))
    lifecycle.reconcile(env.ctx, "links", None, keep=False)
    lifecycle.reconcile(env.ctx, "links", None, keep=True)
    assert SELF_MARK in env.lxc("cache").files["/etc/hosts"]
    assert env.lxc("cache").files["/etc/hosts"].count(SELF_MARK) == 1


# ------------------------------------------------------------ root and permissions

import pytest  # noqa: E402

from locker.cli.main import main  # noqa: E402
from locker.cli.output import Output  # noqa: E402


@pytest.fixture
def not_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from locker import hostconfig

    monkeypatch.setattr("locker.cli.privileges.is_root", lambda: False)
    monkeypatch.setattr(hostconfig, "DEFAULT_PATH", tmp_path / "no-host-file.yaml")
    for name in ("LOCKER_CONFIG", "LOCKER_BACKEND", "LOCKER_LINK_BACKEND", "LOCKER_PROJECT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("command", ["start", "stop", "up", "down", "rm", "cleanup",
                                     "exec", "plan", "ports"])
def test_a_command_that_needs_root_says_so_before_anything(not_root, tmp_path, capsys,
                                                             command) -> None:
    argv = ["-f", str(tmp_path / "nowhere.yaml"), command]
    if command == "exec":
        argv += ["web", "--", "true"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"locker: error: locker {command} ")
    assert "which needs root: run locker as root" in err and len(err.splitlines()) == 1


def test_validate_works_without_root(not_root, capsys) -> None:
    from test_cli import EXAMPLE
    assert main(["-f", str(EXAMPLE), "-p", "shop", "validate"]) == 0


def test_backends_says_needs_root(not_root, fake_backends, capsys) -> None:  # noqa: F811
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "needs root" in out and "can work here" not in out and "cannot work" not in out


def test_a_permission_error_is_one_line_and_no_bug() -> None:
    import io
    out = Output(False, io.StringIO(), io.StringIO())
    status = out.failure(PermissionError(13, "Permission denied", "/var/lib/locker"), 0)
    assert status == 1
    assert out.stderr.getvalue() == ("locker: error: cannot use /var/lib/locker: Permission "
                                     "denied; run locker as root.\n")
    out = Output(False, io.StringIO(), io.StringIO())
    assert out.failure(OSError(16, "Device or resource busy"), 0) == 1
    assert "bug" not in out.stderr.getvalue()


# ------------------------------------------------- the words of every command

from test_cli import memory_cli, run  # noqa: E402, F401  (fixtures)


def _stopped(firewall, runtime):
    pass


def _running(firewall, runtime):
    assert run("start") == 0


def _db_absent(firewall, runtime):
    del runtime.containers["shop_db"]


def _web_frozen(firewall, runtime):
    _running(firewall, runtime)
    assert run("freeze", "web") == 0


#: (situation, command line) -> (exit status, what stderr says). Every
#: command's words for the same situation are the same: pinned here.
MESSAGES = {
    (_stopped, "start web"): (0, None),
    (_running, "start"): (0, [
        "web: already running", "db: already running", "shop: nothing to change"]),
    (_running, "stop web"): (0, None),
    (_stopped, "stop"): (0, [
        "web: already stopped", "db: already stopped", "shop: nothing to change"]),
    (_web_frozen, "freeze web"): (0, ["web: already frozen", "shop: nothing to change"]),
    (_running, "unfreeze web"): (0, ["web: already running", "shop: nothing to change"]),
    (_stopped, "create web"): (0, ["web: already created (shop_web)",
                                   "shop: nothing to change"]),
    (_running, "rm web"): (1, [
        "locker: error: web: cannot remove it: it is running; run `locker stop web` first, "
        "or `locker rm --force web`."]),
    (_stopped, "freeze web"): (1, [
        "locker: error: web: cannot freeze it: it is stopped; run `locker start web` first."]),
    (_stopped, "exec web -- true"): (1, [
        "locker: error: web: cannot run a command in it: it is stopped; run "
        "`locker start web` first."]),
    (_web_frozen, "attach web"): (1, [
        "locker: error: web: cannot attach to it: it is frozen; run `locker unfreeze web` "
        "first."]),
}
NOT_CREATED = "locker: error: not created: db; `locker create` creates them, `locker up` " \
              "creates and starts them."
for _command in ("start db", "stop db", "rm db", "freeze db", "unfreeze db", "cgroup db",
                 "exec db -- true", "attach db", "console db", "logs db"):
    MESSAGES[(_db_absent, _command)] = (1, ["db: not created", NOT_CREATED])


@pytest.fixture
def keyboard_cli(memory_cli, monkeypatch):  # noqa: F811
    from locker.cli import commands, session
    monkeypatch.setattr(commands, "_runtime_context",
                        lambda args, out: session.open_context(args, out.say, out.warn)[0])
    return memory_cli


@pytest.mark.parametrize("situation, argv", list(MESSAGES),
                         ids=[f"{s.__name__[1:]}: {a}" for s, a in MESSAGES])
def test_every_command_says_the_same_in_the_same_situation(keyboard_cli, capsys, situation,
                                                            argv) -> None:
    situation(*keyboard_cli)
    capsys.readouterr()
    status, lines = MESSAGES[(situation, argv)]
    assert run(*argv.split()) == status
    err = capsys.readouterr().err
    if lines is not None:
        assert err.splitlines() == lines


def test_start_reports_the_container_that_is_not_created_and_starts_the_others(
        keyboard_cli, capsys) -> None:
    firewall, runtime = keyboard_cli
    _db_absent(firewall, runtime)
    assert run("start") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "db: not created"
    assert "web: started (10.1.1.2)" in err
    assert err[-1] == NOT_CREATED
    assert runtime.containers["shop_web"].state == "RUNNING"


def test_up_creates_what_is_missing_then_starts(keyboard_cli, capsys) -> None:
    firewall, runtime = keyboard_cli
    _db_absent(firewall, runtime)
    assert run("up") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == ["web: already created (shop_web)", "db: created (shop_db)"]
    assert "db: started (10.1.1.3)" in err and "web: started (10.1.1.2)" in err
    assert {c.state for c in runtime.containers.values()} == {"RUNNING"}


def test_down_stops_and_cleans_up_and_rm_removes(keyboard_cli, capsys) -> None:
    firewall, runtime = keyboard_cli
    _running(firewall, runtime)
    capsys.readouterr()
    assert run("down") == 0
    err = capsys.readouterr().err.splitlines()
    assert "web: stopped" in err and "db: stopped" in err
    assert {c.state for c in runtime.containers.values()} == {"STOPPED"}
    assert firewall.rules.forwards == frozenset()
    assert run("down", "--rm") == 0
    assert runtime.containers == {}
    assert run("down", "--rm") == 0, "a second down --rm has nothing to do, and is fine"


def test_rm_force_stops_first(keyboard_cli, capsys) -> None:
    firewall, runtime = keyboard_cli
    _running(firewall, runtime)
    capsys.readouterr()
    assert run("rm", "--force", "web") == 0
    err = capsys.readouterr().err.splitlines()
    assert err.index("web: stopped") < err.index("web: removed (shop_web)")
    assert "web: removed forward 8080/tcp -> 10.1.1.2:80" in err
    assert "shop_web" not in runtime.containers


def test_exec_runs_the_command_and_exits_with_its_status(keyboard_cli, capsys) -> None:
    firewall, runtime = keyboard_cli
    _running(firewall, runtime)
    runtime.exit_status = 3
    assert run("exec", "web", "--", "ls", "-l", "/") == 3
    assert runtime.attached == [("shop_web", ("ls", "-l", "/"))]
    assert run("attach", "web") == 3
    assert runtime.attached[-1] == ("shop_web", ())
    assert run("console", "db") == 0
    assert runtime.attached[-1] == ("shop_db", ("console",))


def test_exec_without_a_command_is_refused(keyboard_cli, capsys) -> None:
    _running(*keyboard_cli)
    capsys.readouterr()
    assert run("exec", "web") == 1
    assert "exec needs a command: locker exec web -- CMD" in capsys.readouterr().err


def test_logs_print_the_console_log(keyboard_cli, capsys) -> None:
    firewall, runtime = keyboard_cli
    runtime.console_logs["shop_web"] = "one\ntwo\nthree\n"
    assert run("logs", "web") == 0
    assert capsys.readouterr().out == "one\ntwo\nthree\n"
    assert run("logs", "web", "--lines", "2") == 0
    assert capsys.readouterr().out == "two\nthree\n"
    assert run("logs", "db") == 1
    assert "db: it has no console log yet" in capsys.readouterr().err


# ----------------------------------------------- --add-hosts on a bind mount

def test_add_hosts_rewrites_in_place_where_rename_is_busy(env: Env, monkeypatch) -> None:  # noqa: F811
    import errno
    import os

    env.ctx.host_hosts.write_text("127.0.0.1\tlocalhost\n192.0.2.7\tprinter # by hand\n")
    inode = env.ctx.host_hosts.stat().st_ino

    real_replace = os.replace

    def busy(src, dst):
        if Path(dst) == env.ctx.host_hosts:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(dst))
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", busy)
    lifecycle.start(env.ctx, env.ctx.select([]), lifecycle.StartOptions(add_hosts=True))
    text = env.ctx.host_hosts.read_text()
    assert env.ctx.host_hosts.stat().st_ino == inode
    assert text.startswith("127.0.0.1\tlocalhost\n192.0.2.7\tprinter # by hand\n")
    assert "web.example.net web.shop\t# locker:shop" in text
    assert not list(env.ctx.host_hosts.parent.glob(".hosts.locker-*")), "a temporary file left"
    from locker.ops import host_names
    host_names.remove(env.ctx)
    assert env.ctx.host_hosts.read_text() == "127.0.0.1\tlocalhost\n192.0.2.7\tprinter # by hand\n"


# ------------------------------------------------ a long warning, once per host

def test_a_backend_warning_is_said_once_per_host_and_command_class(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from locker.cli.session import warn_once

    said: list[str] = []
    environ = {"LOCKER_RUN_DIR": str(tmp_path / "run")}
    for command in ("status", "status", "ls", "start", "stop", "plan"):
        args = SimpleNamespace(command=command, dry_run=False)
        warn_once(said.append, args, environ)("iptables is the nf_tables variant ...")
    assert said == ["iptables is the nf_tables variant ..."] * 2  # status, then start
    warn_once(said.append, SimpleNamespace(command="status"), environ)("another one")
    assert said[-1] == "another one"
    # where no marker can be written, every warning is said
    blocked = {"LOCKER_RUN_DIR": "/proc/no-such-dir"}
    for _ in range(2):
        warn_once(said.append, SimpleNamespace(command="status"), blocked)("again")
    assert said[-2:] == ["again", "again"]


# ---------------------------------------------------------------- progress

def test_a_long_change_shows_progress_and_clears_it() -> None:
    import io
    import threading

    from locker.cli.progress import Progress, gerund
    from locker.journal import Change, Journal

    assert [gerund(v) for v in ("created", "started", "stopped", "removed", "configured")] \
        == ["creating", "starting", "stopping", "removing", "configuring"]
    class Screen(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.showing = threading.Event()

        def write(self, text: str) -> int:
            written = super().write(text)
            if "creating web ... " in self.getvalue():
                self.showing.set()
            return written

    stream = Screen()
    said: list[str] = []
    journal = Journal(report=said.append, progress=Progress(stream, delay=0.05, interval=0.05))

    def long_change() -> None:  # lasts until the progress line is on the screen
        assert stream.showing.wait(30), "no progress line while the change went on"
    journal.change(Change("web", "created", "container"), long_change)
    shown = stream.getvalue()
    assert "creating web ... 0s" in shown
    assert shown.endswith("\r\033[K"), "the line is cleared before the report"
    assert said == ["web: created"]


def test_no_progress_off_a_terminal(monkeypatch) -> None:
    out = Output.for_terminal(no_color=False, environ={})
    assert not out.live  # pytest's stderr is no terminal


# ---------------------------------------------------------- the project's name

def test_the_project_name_precedence(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from locker.cli.session import project_of

    folder = tmp_path / "my_app"
    folder.mkdir()
    path = folder / "locker.yaml"
    path.write_text("name: fromfile\ncontainers: {web: {}}\n")
    args = SimpleNamespace(file=str(path), project=None)
    assert project_of(args, {}).name == "fromfile"
    assert project_of(args, {"LOCKER_PROJECT": "fromenv"}).name == "fromenv"
    args.project = "fromoption"
    assert project_of(args, {"LOCKER_PROJECT": "fromenv"}).name == "fromoption"
    from locker.errors import ConfigError
    args.project = None
    with pytest.raises(ConfigError) as caught:
        project_of(args, {"LOCKER_PROJECT": "bad_name"})
    assert "from the environment LOCKER_PROJECT" in caught.value.problems[0]


@pytest.mark.parametrize("argv, command", [
    (["exec", "web", "--", "ls", "-l"], ["ls", "-l"]),
    (["exec", "web", "ls", "-l"], ["ls", "-l"]),
    (["exec", "web", "--", "sh", "-c", "exit 3"], ["sh", "-c", "exit 3"]),
])
def test_exec_takes_the_command_after_its_container(argv, command) -> None:
    from locker.cli.main import parse_args
    args = parse_args(argv)
    assert (args.container, args.exec_command) == ("web", command)


def test_status_without_root_shows_what_a_user_may_read(tmp_path, monkeypatch, capsys) -> None:
    from locker.cli import privileges
    from locker.cli.main import main
    from locker.model import Forward
    from locker.state import HostState, ProjectRecord
    from ipaddress import IPv4Address, IPv4Network

    monkeypatch.setattr(privileges, "is_root", lambda: False)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    project_dir = tmp_path / "shop"
    project_dir.mkdir()
    (project_dir / "locker.yaml").write_text("containers:\n  web: {ports: ['8080:80']}\n")
    (tmp_path / "host.yaml").write_text("# empty\n")
    state = tmp_path / "state"
    HostState(state, print).save(ProjectRecord(
        "shop", str(project_dir / "locker.yaml"), bridge="locker_shop",
        subnet=IPv4Network("10.1.1.0/24"), firewall="nftables", link="netlink",
        forwards=(Forward("shop", "web", 8080, IPv4Address("10.1.1.2"), 80),)))
    monkeypatch.setenv("LOCKER_CONFIG", str(tmp_path / "host.yaml"))
    monkeypatch.setenv("LOCKER_STATE_DIR", str(state))
    lxcpath = tmp_path / "lxc"
    lxcpath.mkdir()
    argv = ["-f", str(project_dir / "locker.yaml"), "-P", str(lxcpath), "status"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "web              ABSENT" in out
    assert "recorded network: bridge locker_shop 10.1.1.0/24, backends nftables/netlink" in out
    assert "forward  web: 8080/tcp -> 10.1.1.2:80" in out
    assert main([*argv, "--check"]) == 1
    assert "which needs root" in capsys.readouterr().err
