"""The command line: parsing, exit codes, messages, colour, rendering, and
the commands wired to operations over the in-memory backends."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from locker import hookimpl, hostconfig, plugins
from locker.cli import commands, main as cli_main, render, session
from locker.cli.main import main, parse_args
from locker.cli.output import Output
from locker.context import Context
from locker.errors import BackendError, ConfigError
from locker.model import Availability, Bridge, BridgeState, Forward, Link, Ruleset
from locker.ops.status import ContainerStatus, Status
from locker.planner import HostsEntry
from locker.testing.memory import MemoryFirewall, MemoryLink, MemoryRuntime

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "data" / "spec-example.yaml"
IP = IPv4Address


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No host file, no backend variables, no colour variables from outside."""
    monkeypatch.setattr(hostconfig, "DEFAULT_PATH", tmp_path / "no-host-file.yaml")
    for name in ("LOCKER_CONFIG", "LOCKER_BACKEND", "LOCKER_LINK_BACKEND", "NO_COLOR", "TERM",
                 "LOCKER_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCKER_RUN_DIR", str(tmp_path / "run"))  # warnings' markers


# ------------------------------------------------------------------ parsing

def parse(*argv: str):
    return vars(parse_args(argv))


def test_global_options_before_and_after_the_command_are_the_same() -> None:
    assert parse("start", "--backend", "x", "web") == parse("--backend", "x", "start", "web")
    assert parse("status", "-f", "a.yaml", "--json", "-P", "/l", "-p", "shop",
                 "--link-backend", "ipr2", "--no-color") == \
        parse("-f", "a.yaml", "-P", "/l", "-p", "shop", "--link-backend", "ipr2", "--no-color",
              "status", "--json")


def test_an_option_not_repeated_after_the_command_keeps_its_value() -> None:
    args = parse("-f", "a.yaml", "--backend", "iptables", "stop")
    assert (args["file"], args["backend"]) == ("a.yaml", "iptables")
    assert parse("-f", "a.yaml", "stop", "-f", "b.yaml")["file"] == "b.yaml"


def test_defaults() -> None:
    args = parse("start")
    assert args == {"verbose": 0, "file": "locker.yaml", "project": None, "lxcpath": None,
                    "backend": None, "link_backend": None, "no_color": False,
                    "command": "start", "containers": [], "timeout": 30.0, "ports": True,
                    "links": True, "restart": False, "add_hosts": False, "migrate": False,
                    "dry_run": False, "json": False, "parallel": None}


def test_command_options() -> None:
    args = parse("stop", "--no-ports", "--no-links", "--timeout", "5", "web", "db")
    assert (args["ports"], args["links"], args["timeout"], args["containers"]) == (
        False, False, 5.0, ["web", "db"])
    assert parse("start", "--restart", "--add-hosts")["add_hosts"] is True
    assert "containers" not in parse("cleanup")


def test_verbose_counts_after_the_command() -> None:
    assert parse("start", "-vv")["verbose"] == 2
    assert parse("-v", "start")["verbose"] == 1


def test_verbose_counts_on_both_sides() -> None:
    assert parse("-v", "start", "-v")["verbose"] == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("locker 0.1.0 (lxc-locker)\nfirewall backends:")


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["explode"])
    assert caught.value.code == 2
    assert "invalid choice: 'explode'" in capsys.readouterr().err


def test_no_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


def test_help_imports_no_backend_nor_heavy_library() -> None:
    script = (
        "import sys\n"
        "import locker.cli.main as m\n"
        "m.build_parser().format_help()\n"
        "heavy = ['pluggy', 'stevedore', 'pyroute2', 'nftables', 'iptc', 'yaml',\n"
        "         'locker_nftables', 'locker_iptables', 'locker_ipr2', 'locker.link.netlink',\n"
        "         'locker.plugins', 'locker.projectfile']\n"
        "print(' '.join(n for n in heavy if n in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.strip() == ""


def test_help_runs_as_a_command() -> None:
    done = subprocess.run([sys.executable, "-m", "locker.cli.main", "--help"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0
    for command in cli_main.registry():
        assert command in done.stdout


# --------------------------------------------------------------- validate

def test_validate_of_the_spec_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-f", str(EXAMPLE), "validate"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (f"{EXAMPLE}: project 'data', 2 container(s), no problems\n")
    assert captured.err == ""


def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop" / "locker.yaml"
    path.parent.mkdir()
    path.write_text("containers:\n  web:\n    template: {name: busybox}\n"
                    "    ports: ['99999:80']\n    links: [nobody]\n")
    return path


def test_validate_of_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = bad_file(tmp_path)
    assert main(["-f", str(path), "validate"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("locker: error: ")
    assert "99999" in captured.err and "nobody" in captured.err
    assert str(path) in captured.err
    assert "Traceback" not in captured.err


def test_verbose_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-f", str(bad_file(tmp_path)), "validate", "-v"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ConfigError" in err


def test_missing_project_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-f", str(tmp_path / "nope.yaml"), "validate"]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err


# ------------------------------------------------------------------ output

class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("no_color, environ, tty, colour", [
    (False, {}, True, True),
    (True, {}, True, False),
    (False, {"NO_COLOR": "1"}, True, False),
    (False, {"NO_COLOR": ""}, True, False),
    (False, {"TERM": "dumb"}, True, False),
    (False, {}, False, False),
])
def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch, no_color: bool,
                                   environ: dict, tty: bool, colour: bool) -> None:
    monkeypatch.setattr(sys, "stdout", FakeTty() if tty else io.StringIO())
    out = Output.for_terminal(no_color=no_color, environ=environ)
    assert out.colour is colour
    assert (out.paint("x", "red") == "x") is not colour


def test_output_writes_to_the_current_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    out = Output.for_terminal(no_color=False, environ={})
    out.print("data")
    out.warn("careful")
    assert stdout.getvalue() == "data\n"
    assert stderr.getvalue() == "locker: warning: careful\n"


def failure_of(exc: BaseException, verbose: int = 0) -> tuple[int, str]:
    err = io.StringIO()
    status = Output(False, io.StringIO(), err).failure(exc, verbose)
    return status, err.getvalue()


def test_failure_maps_errors_to_exit_statuses() -> None:
    assert failure_of(BackendError("The kernel said no.")) == (
        1, "locker: error: The kernel said no.\n")
    assert failure_of(ConfigError("Bad file.", ["f:1: bad key", "f:2: bad value"])) == (
        2, "locker: error: Bad file.\nf:1: bad key\nf:2: bad value\n")
    assert failure_of(BackendError("web: failed.\ndb: failed too.")) == (
        1, "locker: error: web: failed.\n  db: failed too.\n")


def test_an_unexpected_exception_is_reported_as_a_bug() -> None:
    status, err = failure_of(KeyError("x"))
    assert status == 1
    assert err.startswith("locker: error: unexpected KeyError")
    assert "run again with -v" in err and "Traceback" not in err


# ------------------------------------------------------------------ session

def test_backend_choice_precedence() -> None:
    env = {"LOCKER_BACKEND": "iptables"}
    assert session.choose("nftables", "LOCKER_BACKEND", "x", env) == ("nftables", "command line")
    assert session.choose(None, "LOCKER_BACKEND", "x", env) == (
        "iptables", "environment LOCKER_BACKEND")
    assert session.choose(None, "LOCKER_BACKEND", "x", {"LOCKER_BACKEND": ""}) == (
        "x", "host file")
    assert session.choose(None, "LOCKER_BACKEND", None, {}) == (None, "auto-detection")


# ----------------------------------------------------------------- backends

class UnusableLink(MemoryLink):
    @hookimpl
    def link_availability(self) -> Availability:
        return Availability(False, "the kernel has no bridges.")


class ManualFirewall(MemoryFirewall):
    @hookimpl
    def firewall_availability(self) -> Availability:
        return Availability(True, "legacy tables", auto=False, warning="legacy!",
                            details={"variant": "legacy", "rules": "3"})


INSTALLED = {
    plugins.FIREWALL: {"nftables": ("locker-nftables", MemoryFirewall),
                       "iptables": ("locker-iptables", ManualFirewall)},
    plugins.LINK: {"netlink": ("locker", UnusableLink), "ipr2": ("locker-ipr2", MemoryLink)},
}


@pytest.fixture
def fake_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(namespace: str, name: str, settings=None) -> object:
        if name not in INSTALLED[namespace]:
            raise plugins.BackendSelectionError(f"There is no backend named {name!r}.")
        return INSTALLED[namespace][name][1]()

    monkeypatch.setattr(plugins, "installed", lambda namespace: {
        name: dist for name, (dist, _) in INSTALLED[namespace].items()})
    monkeypatch.setattr(plugins, "load", load)


def test_backends_json(fake_backends, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["firewall"]["selected"] == {"name": "nftables", "how": "auto-detection",
                                              "error": None}
    assert report["firewall"]["backends"][1] == {
        "name": "iptables", "distribution": "locker-iptables", "usable": True, "auto": False,
        "reason": "legacy tables", "warning": "legacy!",
        "details": {"variant": "legacy", "rules": "3"}}
    assert report["link"]["selected"] == {"name": "ipr2", "how": "auto-detection", "error": None}
    assert report["link"]["backends"][0]["usable"] is False
    assert report["link"]["backends"][0]["reason"] == "the kernel has no bridges."


def test_backends_report_the_requested_ones(fake_backends, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOCKER_LINK_BACKEND", "netlink")
    assert main(["backends", "--json", "--backend", "pf"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["firewall"]["selected"] == {"name": "pf", "how": "command line",
                                              "error": "There is no backend named 'pf'."}
    assert report["link"]["selected"] == {
        "name": "netlink", "how": "environment LOCKER_LINK_BACKEND",
        "error": "The link backend 'netlink' (environment LOCKER_LINK_BACKEND) cannot work "
                 "on this host: the kernel has no bridges."}


def test_backends_choose_as_every_command_does(fake_backends, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The backend `backends` says this host would use is locker.plugins.select's
    choice, asked with the host file's settings."""
    asked = []
    select = plugins.select

    def recording(namespace, requested, how, warn, settings=None):
        asked.append((namespace, requested, how, settings))
        return select(namespace, requested, how, warn, settings)

    monkeypatch.setattr(plugins, "select", recording)
    assert main(["backends", "--json", "--backend", "iptables"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["firewall"]["selected"] == {"name": "iptables", "how": "command line",
                                              "error": None}
    assert [a[:3] for a in asked] == [(plugins.FIREWALL, "iptables", "command line"),
                                      (plugins.LINK, None, "auto-detection")]


def test_backends_verbose_shows_what_each_check_found(fake_backends,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--no-color"]) == 0
    assert "variant: legacy" not in capsys.readouterr().out
    assert main(["backends", "-v", "--no-color"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("   iptables"))
    assert lines[at + 1:at + 3] == ["       variant: legacy", "       rules: 3"]


# ----------------------------------------------------------------- plugins

class FakeEntryPoint:
    def __init__(self, group: str, name: str, value: str, dist: str, version: str) -> None:
        self.group, self.name, self.value = group, name, value
        self.dist = type("Dist", (), {"name": dist, "version": version})()


FAKE_ENTRY_POINTS = [
    FakeEntryPoint("locker.firewall", "nftables", "locker_nftables:NftablesBackend",
                   "lxc-locker-nftables", "0.1.0"),
    FakeEntryPoint("locker.firewall", "acme", "acme_fw:Acme", "acme-locker-fw", "2.3"),
    FakeEntryPoint("locker.link", "netlink", "locker.link.netlink:NetlinkBackend",
                   "lxc-locker", "0.1.0"),
    FakeEntryPoint("locker.plugins", "audit", "audit_log:Observer", "locker-audit", "1.0"),
]


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [
        ep for ep in FAKE_ENTRY_POINTS if ep.group == group])


def test_plugins_lists_backends_and_observers(fake_entry_points,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--no-color"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "firewall backends:",
        "  acme      acme-locker-fw 2.3         acme_fw:Acme",
        "  nftables  lxc-locker-nftables 0.1.0  locker_nftables:NftablesBackend",
        "link backends:",
        "  netlink  lxc-locker 0.1.0  locker.link.netlink:NetlinkBackend",
        "observers:",
        "  audit  locker-audit 1.0  audit_log:Observer",
    ]


def test_plugins_json(fake_entry_points, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["observers"] == [{"name": "audit", "distribution": "locker-audit",
                                    "version": "1.0", "entry_point": "audit_log:Observer"}]
    assert [p["name"] for p in report["firewall"]] == ["acme", "nftables"]
    assert [p["name"] for p in report["link"]] == ["netlink"]


def test_plugins_needs_no_root(fake_entry_points, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["plugins", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["link"][0]["name"] == "netlink"


def test_backends_text(fake_backends, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--no-color"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "firewall backends:"
    assert lines[1].startswith(" * nftables")
    assert "can work here: the in-memory firewall works everywhere" in lines[1]
    assert lines[2].startswith("   iptables")
    assert "can work here, never picked automatically: legacy tables" in lines[2]
    assert lines[3] == "   this host would use: nftables (auto-detection)"
    assert "cannot work here: the kernel has no bridges." in lines[5]
    assert lines[-1] == "   this host would use: ipr2 (auto-detection)"


# ------------------------------------------------------------------ render

def a_status(rules: Ruleset | None = None) -> Status:
    """web runs and db is frozen, both with their rules; db's forward was
    moved from 5432 to 6432 in the file."""
    from locker import diff
    from locker.project import ContainerSpec, LinkSpec, PortSpec, Project

    project = Project("shop", Path("/srv/shop/locker.yaml"), (
        ContainerSpec("web", ports=(PortSpec(8080, 80),), links=(LinkSpec("db", "database"),)),
        ContainerSpec("db", ports=(PortSpec(6432, 5432),)),
        ContainerSpec("old")))
    bridge = Bridge("shop", "locker_shop", IPv4Network("10.1.1.0/24"))
    web, db = IP("10.1.1.2"), IP("10.1.1.3")
    rules = rules or Ruleset(
        nat=frozenset({bridge}),
        forwards=frozenset({Forward("shop", "web", 8080, web, 80),
                            Forward("shop", "db", 5432, db, 5432)}),
        links=frozenset({Link("shop", "web", web, "db", db)}), jumps=True)
    state = BridgeState("locker_shop", (IPv4Interface("10.1.1.1/24"),), True)
    wanted = diff.wanted(project, bridge, {"web": web, "db": db}, {"web", "db"})
    result = diff.diff(project, wanted, diff.Found(state, rules), {"web", "db"})
    return Status(
        "shop", "locker_shop", state,
        (ContainerStatus("web", "shop_web", "RUNNING", IPv4Interface("10.1.1.2/24"),
                         (IP("10.1.1.2"),), (HostsEntry(IP("10.1.1.3"), ("db", "database")),)),
         ContainerStatus("db", "shop_db", "FROZEN", IPv4Interface("10.1.1.3/24"), (), ()),
         ContainerStatus("old", "shop_old", "ABSENT", None, (), ())),
        rules, result)


def test_render_status_shows_each_item_and_what_differs() -> None:
    stdout = io.StringIO()
    render.status(Output(False, stdout, io.StringIO()), a_status())
    assert stdout.getvalue().splitlines() == [
        "project shop  bridge locker_shop: 10.1.1.1/24, up",
        "",
        "CONTAINER        STATE    ADDRESS          LXC NAME",
        "web              RUNNING  10.1.1.2         shop_web",
        "db               FROZEN   -                shop_db",
        "old              ABSENT   -                shop_old",
        "",
        "network, as found in the kernel:",
        "  in place bridge   shop: bridge locker_shop 10.1.1.0/24",
        "  in place chains   shop: Locker's chains and jumps",
        "  in place nat      shop: network rules locker_shop 10.1.1.0/24",
        "  stale    forward  db: 5432/tcp -> 10.1.1.3:5432  (the project file does not ask "
        "for it; fix: locker ports)",
        "  missing  forward  db: 6432/tcp -> 10.1.1.3:5432  (fix: locker ports)",
        "  in place forward  web: 8080/tcp -> 10.1.1.2:80",
        "  in place link     web: to db (10.1.1.2 <-> 10.1.1.3)",
        "",
        "names in the containers' /etc/hosts:",
        "  web: 10.1.1.3 db database",
        "",
        "2 item(s) differ from what the project wants",
    ]


def test_render_status_check_prints_only_the_differences() -> None:
    stdout = io.StringIO()
    render.differences(Output(False, stdout, io.StringIO()), a_status())
    assert [line.split()[:3] for line in stdout.getvalue().splitlines()] == [
        ["stale", "forward", "db:"], ["missing", "forward", "db:"]]


def test_render_status_of_nothing_in_colour() -> None:
    from locker import diff
    from locker.project import ContainerSpec, Project

    project = Project("shop", Path("/srv/shop/locker.yaml"), (ContainerSpec("web"),))
    nothing = diff.diff(project, diff.wanted(project, None, {}, ()), diff.Found(None, Ruleset()))
    empty = Status("shop", "locker_shop", None,
                   (ContainerStatus("web", "shop_web", "ABSENT", None, (), ()),), Ruleset(),
                   nothing)
    stdout = io.StringIO()
    render.status(Output(True, stdout, io.StringIO()), empty)
    text = stdout.getvalue()
    assert "bridge locker_shop: \033[2mabsent\033[0m" in text
    assert "network, as found in the kernel: nothing (no container runs)" in text
    assert "/etc/hosts" not in text


def test_render_shows_control_characters_escaped() -> None:
    stdout = io.StringIO()
    status = a_status()
    fake = HostsEntry(IP("6.6.6.6"), ("bank.example\x1b]0;PWNED\x07",))
    forged = ContainerStatus("web", "shop_web", "RUNNING", None, (), (fake,),
                             not_lockers=(fake,))
    status = Status(status.project, status.bridge_name, status.bridge, (forged,),
                    status.rules, status.diff)
    render.status(Output(False, stdout, io.StringIO()), status)
    assert "\x1b" not in stdout.getvalue()
    assert "bank.example\\x1b]0;PWNED\\x07" in stdout.getvalue()
    assert "(marked as Locker's, but Locker did not write it)" in stdout.getvalue()


# -------------------------------------- commands over the in-memory backends

@pytest.fixture
def memory_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Commands run on the example project over in-memory backends; returns
    the firewall and runtime they share."""
    from locker.projectfile import load_project

    monkeypatch.setattr("locker.cli.privileges.is_root", lambda: True)
    firewall, link, runtime = MemoryFirewall(), MemoryLink(), MemoryRuntime()
    project = load_project(EXAMPLE, "shop")
    for name in project.container_names:
        runtime.create(f"shop_{name}", project.container(name).source)

    def open_context(args, say, warn, trace=None, mode=None):
        assert (args.file, args.project) == (str(EXAMPLE), "shop")
        from contextlib import nullcontext

        from locker.cli.session import Migration
        from locker.journal import Journal
        journal = Journal(dry_run=getattr(args, "dry_run", False),
                          report=(lambda line: None) if getattr(args, "json", False) else None)
        return Context(project, plugins.new_manager(firewall, link), runtime, say=say,
                       warn=warn, lock=nullcontext, host_resolv=lambda: "",
                       host_hosts=tmp_path / "hosts", journal=journal,
                       project_lock=lambda name, waiting=None: nullcontext(),
                       ip_forwarding_off=lambda: not link.ip_forward,
                       foreign_dnats=lambda: [], cgroup2=lambda: False), Migration()

    monkeypatch.setattr(session, "open_context", open_context)
    return firewall, runtime


def run(*argv: str) -> int:
    return main(["-f", str(EXAMPLE), "-p", "shop", *argv])


def test_start_command_honours_its_options(memory_cli, capsys) -> None:
    firewall, runtime = memory_cli
    assert run("start", "--no-ports", "web", "db") == 0
    assert runtime.containers["shop_web"].state == "RUNNING"
    assert firewall.rules.forwards == frozenset()
    assert len(firewall.rules.links) == 1
    assert "web: started (10.1.1.2)" in capsys.readouterr().err


def test_ports_then_status_json(memory_cli, capsys) -> None:
    firewall, runtime = memory_cli
    assert run("start", "--no-ports") == 0
    capsys.readouterr()
    assert run("ports") == 0
    assert "web: added forward 8080/tcp -> 10.1.1.2:80" in capsys.readouterr().err
    assert run("ports", "db") == 0
    assert capsys.readouterr().err == "shop: nothing to change\n"
    assert run("status", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["schema_version"] == 1
    assert len(document["rules"]["forwards"]) == 3


def test_an_unknown_container_is_a_usage_error(memory_cli, capsys) -> None:
    assert run("stop", "nope") == 2
    assert "nope: no such container" in capsys.readouterr().err


def test_a_failing_operation_exits_1(memory_cli, capsys) -> None:
    firewall, runtime = memory_cli
    runtime.fail_start.add("shop_db")
    assert run("start") == 1
    err = capsys.readouterr().err
    assert "locker: error: db: Container shop_db failed to start." in err
    assert runtime.containers["shop_web"].state == "RUNNING"


def test_select_backends_follows_the_precedence(fake_backends) -> None:
    from locker.project import HostConfig

    args = parse_args(["--link-backend", "ipr2", "status"])
    warnings: list[str] = []
    firewall, link = session.select_backends(
        args, HostConfig(firewall="nftables"),
        {"LOCKER_BACKEND": "iptables", "LOCKER_RUN_DIR": os.environ["LOCKER_RUN_DIR"]},
        warnings.append)
    assert (firewall.name, firewall.how) == ("iptables", "environment LOCKER_BACKEND")
    assert (link.name, link.how) == ("ipr2", "command line")
    assert warnings == ["legacy!"]


def test_rmlinks_removes_the_rules_and_the_hosts_lines(memory_cli, capsys) -> None:
    firewall, runtime = memory_cli
    assert run("start") == 0
    assert "database" in runtime.containers["shop_web"].files["/etc/hosts"]
    capsys.readouterr()
    assert run("rmlinks", "web") == 0
    assert firewall.rules.links == frozenset()
    assert capsys.readouterr().err == ("web: removed link to db (10.1.1.2 <-> 10.1.1.3)\n"
                                       "web: rewrote /etc/hosts\n")
    hosts = runtime.containers["shop_web"].files["/etc/hosts"]
    assert "database" not in hosts
    assert "web.example.net web\t# locker" in hosts


def test_rmlinks_of_a_peer_removes_its_name_from_the_linking_container(memory_cli) -> None:
    firewall, runtime = memory_cli
    assert run("start") == 0
    assert run("rmlinks", "db") == 0
    assert firewall.rules.links == frozenset()
    assert "database" not in runtime.containers["shop_web"].files["/etc/hosts"]


@pytest.mark.parametrize("value", ["-3", "0", "nan", "soon"])
def test_a_timeout_must_be_a_positive_number(value: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        parse("start", "--timeout", value)
    assert stop.value.code == 2
    assert "is not a positive number of seconds" in capsys.readouterr().err


# ------------------------------------------------------- backend switches

def recorded(firewall: str = "nftables", link: str = "ipr2"):
    from locker.state import ProjectRecord
    return ProjectRecord("shop", "/srv/shop/locker.yaml", firewall=firewall, link=link)


def switch(argv, record, mode, environ=None):
    from locker.project import HostConfig

    warnings: list[str] = []
    import os
    environ = {"LOCKER_RUN_DIR": os.environ["LOCKER_RUN_DIR"], **(environ or {})}
    chosen = session.select_for_project(parse_args(argv), HostConfig(), record,
                                        environ, warnings.append, mode)
    return chosen, warnings


def test_without_a_choice_the_recorded_backends_are_used(fake_backends) -> None:
    (firewall, link, migration), warnings = switch(["start"], recorded("iptables"), session.ADDS)
    assert (firewall.name, firewall.how, link.name) == ("iptables", "host state", "ipr2")
    assert migration == session.Migration()


def test_another_backend_than_the_recorded_one_is_refused_naming_both(fake_backends) -> None:
    with pytest.raises(ConfigError) as caught:
        switch(["--backend", "iptables", "start"], recorded("nftables"), session.ADDS)
    message = str(caught.value)
    assert "made by the firewall backend 'nftables'" in message
    assert "'iptables' is chosen (command line)" in message
    assert "--migrate" in message and "--backend nftables" in message
    assert caught.value.exit_status == 2


def test_teardown_uses_the_recorded_backend_and_says_so(fake_backends) -> None:
    (firewall, _, _), warnings = switch(["--backend", "iptables", "cleanup"],
                                        recorded("nftables"), session.KEEPS)
    assert firewall.name == "nftables"
    assert any("using it rather than iptables" in w for w in warnings)


def test_migrate_picks_the_new_backend_and_names_the_old(fake_backends) -> None:
    (firewall, link, migration), _ = switch(
        ["--backend", "iptables", "start", "--migrate"], recorded("nftables"), session.ADDS,
        {"LOCKER_LINK_BACKEND": "ipr2"})
    assert firewall.name == "iptables"
    assert migration == session.Migration(firewall="nftables")


def test_the_host_file_choosing_another_backend_is_a_switch_too(fake_backends) -> None:
    from locker.project import HostConfig

    with pytest.raises(ConfigError, match="'iptables' is chosen \\(host file\\)"):
        session.select_for_project(parse_args(["ports"]), HostConfig(firewall="iptables"),
                                   recorded("nftables"),
                                   {"LOCKER_RUN_DIR": os.environ["LOCKER_RUN_DIR"]}, print,
                                   session.ADDS)


# --------------------------------------------------------------- the registry

def test_each_command_takes_exactly_the_options_it_registers() -> None:
    from locker.cli.registry import REGISTRY

    parser = cli_main.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(subs.choices) == list(cli_main.registry())
    for name, command in REGISTRY.items():
        taken = {flag for action in subs.choices[name]._actions
                 for flag in action.option_strings}
        registered = {flag for option in command.options for flag in option.flags}
        globals_ = {"-h", "--help", "-v", "--verbose", "-f", "--file", "-p", "--project",
                    "-P", "--lxcpath", "--backend", "--link-backend", "--no-color"}
        assert taken - globals_ == registered, name
        assert command.changing == ("--dry-run" in registered), name


def test_a_command_is_registered_once() -> None:
    from locker.cli.registry import command

    with pytest.raises(ValueError, match="'start' is registered twice"):
        command("start", "again")(lambda args, out: None)
