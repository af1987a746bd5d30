"""Packaging: the four distributions' metadata, the generated man page and
completions against the parser, ``--version`` and ``locker completion``."""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import locker
from locker.cli import about
from locker.cli.main import build_parser, main, registry

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ["nftables", "iptables", "ipr2"]
PLUGIN_DIRS = [ROOT / "plugins" / name for name in PLUGINS]
IN_SDIST = "the plugins' folders are not here (the core's unpacked sdist)"


def in_checkout(test):
    """Only where the plugins' folders are: not in the core's own sdist."""
    return pytest.mark.may_skip(pytest.mark.skipif(not PLUGIN_DIRS[0].is_dir(),
                                                   reason=IN_SDIST)(test))


def pyproject(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def gendocs():
    spec = importlib.util.spec_from_file_location("gendocs", ROOT / "scripts" / "gendocs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ metadata

def test_the_core_distribution_is_lxc_locker_with_its_version_in_one_place() -> None:
    project = pyproject(ROOT)["project"]
    assert project["name"] == "lxc-locker"
    assert project["dynamic"] == ["version"]
    assert "version" not in project
    assert pyproject(ROOT)["tool"]["hatch"]["version"]["path"] == "locker/_version.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", locker.__version__)
    package = Path(locker.__file__).parent
    written = [p for p in package.rglob("*.py")
               if re.search(rf'^__version__ = "{re.escape(locker.__version__)}"', p.read_text(), re.M)]
    assert written == [package / "_version.py"]


@in_checkout
@pytest.mark.parametrize("folder", PLUGIN_DIRS, ids=PLUGINS)
def test_a_plugin_depends_on_the_core_compatible_range(folder: Path) -> None:
    project = pyproject(folder)["project"]
    assert project["name"] == f"lxc-locker-{folder.name}"
    major, minor, _ = locker.__version__.split(".")
    assert project["dependencies"] == [f"lxc-locker>={major}.{minor}.0,<{major}.{int(minor) + 1}"]


@pytest.mark.may_skip
@pytest.mark.parametrize("folder", [ROOT] + PLUGIN_DIRS, ids=["core"] + PLUGINS)
def test_pep639_licence_and_a_licence_file(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(IN_SDIST)
    data = pyproject(folder)
    assert data["project"]["license"] == "MIT"
    assert data["build-system"]["build-backend"] == "hatchling.build"
    assert (folder / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert "MIT License" in (folder / "LICENSE").read_text()


@pytest.mark.may_skip
@pytest.mark.parametrize("folder", [ROOT] + PLUGIN_DIRS, ids=["core"] + PLUGINS)
def test_the_pytest_plugin_is_opt_in(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(IN_SDIST)
    data = pyproject(folder)
    assert "pytest11" not in data["project"].get("entry-points", {})
    assert data["tool"]["pytest"]["ini_options"]["addopts"] == "-p locker.testing.pytest_plugin"


def test_no_installed_distribution_registers_lockers_pytest_plugin() -> None:
    from importlib.metadata import entry_points

    assert [ep for ep in entry_points(group="pytest11") if ep.value.startswith("locker")] == []


# ------------------------------------------------- man page and completions

def test_man_page_and_completions_are_what_the_parser_gives() -> None:
    pytest.importorskip("shtab", reason="python3-shtab is missing (scripts/setup installs it)")
    pytest.importorskip("build_manpages",
                        reason="python3-argparse-manpage is missing (scripts/setup installs it)")
    stale = gendocs().stale(ROOT)
    assert stale == [], (f"{', '.join(stale)} differ from the command line's parser: "
                         f"run scripts/gen-docs and commit the result")


def test_man_page_has_a_section_for_every_command() -> None:
    page = (ROOT / "man" / "locker.1").read_text()
    assert page.startswith(f'.TH LOCKER 1 "" "locker {locker.__version__}"')
    for command in registry():
        assert f"OPTIONS 'locker {command}'" in page, command
    for heading in ("EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"):
        assert f".SH {heading}" in page


def test_completions_know_every_command_and_option() -> None:
    parser = build_parser()
    options = {flag for action in parser._actions for flag in action.option_strings}
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for sub in subs.choices.values():
        options |= {flag for action in sub._actions for flag in action.option_strings}
    for shell in about.COMPLETIONS:
        text = about.completion_script(shell)
        for command in registry():
            assert re.search(rf"\b{command}\b", text), (shell, command)
        for flag in options:
            spelled = flag if shell != "fish" else (
                f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
            assert spelled in text, (shell, flag)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_prints_the_shipped_script(shell: str, capsys) -> None:
    assert main(["completion", shell]) == 0
    assert capsys.readouterr().out == about.completion_script(shell)


def test_completion_of_an_unknown_shell_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["completion", "tcsh"])
    assert exit.value.code == 2
    assert "invalid choice: 'tcsh'" in capsys.readouterr().err


def test_bash_completion_is_valid_bash() -> None:
    script = about.completion_script("bash")
    done = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- --version

class FakeDist:
    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = name, version


class FakeEntryPoint:
    def __init__(self, name: str, dist) -> None:
        self.name, self.dist = name, dist


def test_version_lists_the_core_and_every_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {
        "locker.firewall": [FakeEntryPoint("nftables", FakeDist("lxc-locker-nftables", "0.1.0")),
                            FakeEntryPoint("custom", FakeDist("acme-locker-fw", "2.3"))],
        "locker.link": [FakeEntryPoint("netlink", FakeDist("lxc-locker", locker.__version__))],
        "locker.plugins": [FakeEntryPoint("audit", None)],
    }
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: table.get(group, []))
    assert about.version_text() == "\n".join([
        f"locker {locker.__version__} (lxc-locker)",
        "firewall backends:",
        "  custom    acme-locker-fw 2.3",
        "  nftables  lxc-locker-nftables 0.1.0",
        "link backends:",
        f"  netlink  lxc-locker {locker.__version__}",
        "observers:",
        "  audit  ? ?",
    ])
    table.clear()
    assert about.version_text().endswith("firewall backends: none\nlink backends: none\n"
                                         "observers: none")


def test_version_option_exits_with_the_listing(monkeypatch, capsys) -> None:
    monkeypatch.setattr(about, "version_text", lambda: "locker X")
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == "locker X\n"


def test_version_imports_no_plugin() -> None:
    script = ("import sys\nfrom locker.cli.about import version_text\nversion_text()\n"
              "print(' '.join(n for n in ['pluggy', 'stevedore', 'locker_nftables', "
              "'locker_iptables', 'locker_ipr2', 'locker.link.netlink', 'nftables', 'iptc'] "
              "if n in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.strip() == ""


# ------------------------------------------------------------------ scripts

def _function(script: str, name: str) -> str:
    """The shell function ``name`` of a script, as its text."""
    text = (ROOT / "scripts" / script).read_text()
    match = re.search(rf"^{name}\(\) {{.*?^}}$", text, re.M | re.S)
    assert match, (script, name)
    return match.group(0)


@pytest.mark.may_skip  # script(1) may be missing: the terminal case is optional
@pytest.mark.parametrize("terminal", [False, True])
def test_demo_writes_escape_codes_only_on_a_terminal(terminal: bool) -> None:
    text = (ROOT / "scripts" / "demo").read_text()
    block = re.search(r"^if \[ -t 1 \].*?^fi$", text, re.M | re.S).group(0)
    if terminal:  # `script` gives the shell a terminal as its stdout
        if subprocess.run(["sh", "-c", "command -v script"], capture_output=True).returncode:
            pytest.skip("needs script(1)")
        done = subprocess.run(["script", "-qec", f"bash -c {_sh_quote(block + '; step hello')}",
                               "/dev/null"], capture_output=True, text=True,
                              env={"TERM": "xterm", "PATH": "/usr/bin:/bin"})
        assert "\033[1m== hello" in done.stdout
    else:
        done = subprocess.run(["bash", "-c", block + "; step hello"], capture_output=True,
                              text=True, env={"TERM": "xterm", "PATH": "/usr/bin:/bin"})
        assert done.stdout == "\n== hello\n"


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_setup_sees_a_held_apt_lock(tmp_path: Path) -> None:
    lock = tmp_path / "lock-frontend"
    lock.write_text("")
    check = _function("setup", "apt_is_free") + f'\napt_is_free "{lock}"'
    assert subprocess.run(["bash", "-c", check]).returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert subprocess.run(["bash", "-c", check]).returncode == 1
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------- debian

@pytest.mark.may_skip
def test_debian_packages_one_binary_package_per_distribution_at_the_cores_version() -> None:
    debian = ROOT / "debian"
    if not debian.is_dir():
        pytest.skip("no debian/ here (an sdist)")
    first = (debian / "changelog").read_text().splitlines()[0]
    assert re.match(rf"lxc-locker \({re.escape(locker.__version__)}-\d+\) ", first), first
    control = (debian / "control").read_text()
    packages = re.findall(r"^Package: (\S+)$", control, re.M)
    assert packages == ["python3-locker"] + [f"python3-locker-{name}" for name in PLUGINS]
    tests = (debian / "tests" / "control").read_text()
    assert "Restrictions: needs-root, isolation-machine" in tests
