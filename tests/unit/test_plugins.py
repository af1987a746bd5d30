"""Finding, choosing, loading and registering plugins, over fake entry
points: no installed plugin is ever loaded here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace

import pytest
from stevedore.extension import ExtensionManager

from locker import hookimpl, plugins
from locker.errors import BackendError, BackendSelectionError, ConfigError
from locker.model import Availability
from locker.testing.memory import MemoryFirewall, MemoryLink

MEMORY_FIREWALL = "locker.testing.memory:MemoryFirewall"
MEMORY_LINK = "locker.testing.memory:MemoryLink"


class UnusableFirewall(MemoryFirewall):
    @hookimpl
    def firewall_availability(self) -> Availability:
        return Availability(False, "libfoo is missing; install it.")


class WarningFirewall(MemoryFirewall):
    @hookimpl
    def firewall_availability(self) -> Availability:
        return Availability(True, "works", auto=False, warning="the legacy tables are in use.")


class ManualFirewall(MemoryFirewall):
    @hookimpl
    def firewall_availability(self) -> Availability:
        return Availability(True, "works when asked for", auto=False)


class CrashingFirewall(MemoryFirewall):
    @hookimpl
    def firewall_availability(self) -> Availability:
        raise RuntimeError("segfault in disguise")


class SilentFirewall:
    """Implements no hook at all."""

    locker_api = plugins.PLUGIN_API


class RaisingConstructor(MemoryFirewall):
    def __init__(self) -> None:
        raise OSError("cannot open /dev/foo")


class Meddler:
    """An observer that also implements an operation hook."""

    @hookimpl
    def add_forward(self, forwards) -> None:
        pass


class Raiser:
    @hookimpl
    def container_started(self, project, container, address) -> None:
        raise RuntimeError("observer is broken")


class Listener:
    def __init__(self) -> None:
        self.heard: list[str] = []

    @hookimpl
    def project_cleaned(self, project: str) -> None:
        self.heard.append(project)


class MisnamedListener:
    @hookimpl
    def project_cleaned(self, name: str) -> None:  # the spec's argument is "project"
        pass


def here(name: str) -> str:
    return f"{__name__}:{name}"


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch):
    """Replace the installed entry points, for locker.plugins and stevedore
    alike, by ``{group: [(name, value, distribution), ...]}``."""
    table: dict[str, list[tuple[str, str, str]]] = {}

    def listed(group: str) -> list:
        return [SimpleNamespace(name=name, value=value, group=group,
                                dist=SimpleNamespace(name=dist))
                for name, value, dist in table.get(group, [])]

    def for_stevedore(manager: ExtensionManager) -> list[EntryPoint]:
        return [EntryPoint(name, value, manager.namespace)
                for name, value, _ in table.get(manager.namespace, [])]

    monkeypatch.setattr(plugins, "entry_points", listed)
    monkeypatch.setattr(ExtensionManager, "list_entry_points", for_stevedore)
    return table


def firewalls(table, **named: str) -> None:
    table[plugins.FIREWALL] = [(name, value, f"locker-{name}") for name, value in named.items()]


def no_warning(message: str) -> None:
    pytest.fail(f"unexpected warning: {message}")


# ---------------------------------------------------------------- installed

def test_installed_lists_preferred_first_then_alphabetical(entry_points) -> None:
    firewalls(entry_points, zeta=MEMORY_FIREWALL, iptables=MEMORY_FIREWALL,
              alpha=MEMORY_FIREWALL, nftables=MEMORY_FIREWALL)
    assert list(plugins.installed(plugins.FIREWALL).items()) == [
        ("nftables", "locker-nftables"), ("iptables", "locker-iptables"),
        ("alpha", "locker-alpha"), ("zeta", "locker-zeta")]


def test_installed_imports_nothing(entry_points) -> None:
    firewalls(entry_points, ghost="no_such_module_anywhere:Backend")
    assert plugins.installed(plugins.FIREWALL) == {"ghost": "locker-ghost"}
    assert plugins.installed(plugins.LINK) == {}


def test_installed_without_a_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "entry_points",
                        lambda group: [EntryPoint("netlink", MEMORY_LINK, group)])
    assert plugins.installed(plugins.LINK) == {"netlink": "?"}


# --------------------------------------------------------------------- load

def test_load_instantiates_the_named_backend(entry_points) -> None:
    firewalls(entry_points, memory=MEMORY_FIREWALL, other=here("UnusableFirewall"))
    assert type(plugins.load(plugins.FIREWALL, "memory")) is MemoryFirewall


def test_load_of_an_unknown_name_lists_the_installed(entry_points) -> None:
    firewalls(entry_points, iptables=MEMORY_FIREWALL, nftables=MEMORY_FIREWALL)
    with pytest.raises(BackendSelectionError) as caught:
        plugins.load(plugins.FIREWALL, "pf")
    assert str(caught.value) == (
        "There is no firewall backend named 'pf'. Installed: nftables, iptables.")
    assert caught.value.exit_status == 2


def test_load_with_nothing_installed(entry_points) -> None:
    with pytest.raises(BackendSelectionError, match="Installed: none."):
        plugins.load(plugins.LINK, "netlink")


def test_a_backend_that_cannot_be_imported_is_a_backend_error(entry_points) -> None:
    firewalls(entry_points, ghost="no_such_module_anywhere:Backend")
    with pytest.raises(BackendError, match="The firewall backend 'ghost' cannot be loaded: "):
        plugins.load(plugins.FIREWALL, "ghost")


def test_a_backend_whose_constructor_fails_is_a_backend_error(entry_points) -> None:
    firewalls(entry_points, broken=here("RaisingConstructor"))
    with pytest.raises(BackendError, match="'broken' cannot be loaded: cannot open /dev/foo"):
        plugins.load(plugins.FIREWALL, "broken")


# ------------------------------------------------------------- availability

def test_availability_of_a_working_backend() -> None:
    assert plugins.availability(plugins.FIREWALL, MemoryFirewall()) == Availability(
        True, "the in-memory firewall works everywhere")
    assert plugins.availability(plugins.LINK, MemoryLink()).usable


def test_a_crashing_availability_check_is_an_answer() -> None:
    answer = plugins.availability(plugins.FIREWALL, CrashingFirewall())
    assert answer == Availability(False, "its availability check failed: segfault in disguise")


def test_a_missing_availability_check_is_an_answer() -> None:
    answer = plugins.availability(plugins.FIREWALL, SilentFirewall())
    assert not answer.usable
    assert "does not implement the availability check" in answer.reason
    # a firewall is not a link backend
    assert not plugins.availability(plugins.LINK, MemoryFirewall()).usable


# ------------------------------------------------------------------- select

def test_select_by_name(entry_points) -> None:
    firewalls(entry_points, nftables=here("UnusableFirewall"), memory=MEMORY_FIREWALL)
    chosen = plugins.select(plugins.FIREWALL, "memory", "command line", no_warning)
    assert (chosen.name, chosen.how, chosen.namespace) == ("memory", "command line",
                                                           plugins.FIREWALL)
    assert type(chosen.plugin) is MemoryFirewall
    assert chosen.availability.usable


def test_select_of_an_unknown_name(entry_points) -> None:
    firewalls(entry_points, nftables=MEMORY_FIREWALL)
    with pytest.raises(BackendSelectionError, match="named 'pf'. Installed: nftables."):
        plugins.select(plugins.FIREWALL, "pf", "command line", no_warning)


def test_select_of_an_unusable_backend_gives_its_reason(entry_points) -> None:
    firewalls(entry_points, nftables=here("UnusableFirewall"))
    with pytest.raises(BackendError) as caught:
        plugins.select(plugins.FIREWALL, "nftables", "host file", no_warning)
    assert str(caught.value) == ("The firewall backend 'nftables' (host file) cannot work on "
                                 "this host: libfoo is missing; install it.")
    assert not isinstance(caught.value, BackendSelectionError)


def test_select_by_name_says_the_warning_once(entry_points) -> None:
    firewalls(entry_points, iptables=here("WarningFirewall"))
    warnings: list[str] = []
    chosen = plugins.select(plugins.FIREWALL, "iptables", "environment", warnings.append)
    assert warnings == ["the legacy tables are in use."]
    assert chosen.availability.warning == "the legacy tables are in use."


def test_auto_detection_skips_unusable_and_manual_backends(entry_points) -> None:
    firewalls(entry_points, nftables=here("UnusableFirewall"), iptables=here("ManualFirewall"),
              crashy=here("CrashingFirewall"), memory=MEMORY_FIREWALL)
    chosen = plugins.select(plugins.FIREWALL, None, "auto-detection", no_warning)
    assert chosen.name == "memory"
    assert chosen.how == "auto-detection"


def test_auto_detection_follows_the_preference(entry_points) -> None:
    firewalls(entry_points, aaa=MEMORY_FIREWALL, iptables=MEMORY_FIREWALL)
    assert plugins.select(plugins.FIREWALL, None, "auto-detection", no_warning).name == "iptables"


def test_auto_detection_without_a_usable_backend_lists_every_reason(entry_points) -> None:
    firewalls(entry_points, nftables=here("UnusableFirewall"),
              ghost="no_such_module_anywhere:Backend", iptables=here("ManualFirewall"))
    with pytest.raises(BackendError) as caught:
        plugins.select(plugins.FIREWALL, None, "auto-detection", no_warning)
    message = str(caught.value)
    assert message.startswith("No firewall backend can be picked automatically on this host (")
    assert "nftables: libfoo is missing; install it." in message
    assert "ghost: The firewall backend 'ghost' cannot be loaded" in message
    assert "choose one with --backend." in message


def test_auto_detection_explains_a_backend_it_never_picks(entry_points) -> None:
    firewalls(entry_points, iptables=here("ManualFirewall"))
    with pytest.raises(BackendError) as caught:
        plugins.select(plugins.FIREWALL, None, "auto-detection", no_warning)
    message = str(caught.value)
    assert "iptables: " in message
    assert "works when asked for" not in message  # not a reason it cannot work
    assert "--backend iptables" in message


def test_auto_detection_with_nothing_installed(entry_points) -> None:
    with pytest.raises(BackendError, match=r"\(none is installed\).*--link-backend"):
        plugins.select(plugins.LINK, None, "auto-detection", no_warning)


# ----------------------------------------------------------------- register

def selected(namespace: str, name: str, plugin: object) -> plugins.Selected:
    return plugins.Selected(namespace, name, plugin, Availability(True, "ok"), "command line")


def test_register_gives_one_implementation_of_each_operation() -> None:
    firewall, link, listener = MemoryFirewall(), MemoryLink(), Listener()
    manager = plugins.register(selected(plugins.FIREWALL, "mem", firewall),
                               selected(plugins.LINK, "memlink", link),
                               [("listener", listener)], no_warning)
    assert manager.get_name(firewall) == "locker.firewall:mem"
    assert manager.get_name(link) == "locker.link:memlink"
    manager.hook.project_cleaned(project="shop")
    assert listener.heard == ["shop"]


def test_an_observer_implementing_an_operation_is_refused_by_name() -> None:
    with pytest.raises(BackendSelectionError) as caught:
        plugins.register(selected(plugins.FIREWALL, "mem", MemoryFirewall()),
                         selected(plugins.LINK, "memlink", MemoryLink()),
                         [("meddler", Meddler())], no_warning)
    message = str(caught.value)
    assert "add_forward must have exactly one implementation, found 2" in message
    assert "locker.firewall:mem" in message and "locker.plugins:meddler" in message


def test_a_backend_missing_a_hook_is_refused_naming_the_hooks() -> None:
    class NoRemoveLink(MemoryFirewall):
        remove_link = None

    with pytest.raises(BackendSelectionError) as caught:
        plugins.register(selected(plugins.FIREWALL, "partial", NoRemoveLink()),
                         selected(plugins.LINK, "memlink", MemoryLink()), (), no_warning)
    assert str(caught.value).startswith(
        "The firewall backend 'partial' does not implement remove_link, which every "
        "firewall backend must")
    with pytest.raises(BackendSelectionError, match="does not implement add_forward, add_link"):
        plugins.register(selected(plugins.FIREWALL, "silent", SilentFirewall()),
                         selected(plugins.LINK, "memlink", MemoryLink()), (), no_warning)


class Misspelt(MemoryFirewall):
    @hookimpl
    def project_cleand(self, project) -> None:
        pass


def test_a_misspelt_hookimpl_is_a_load_error_naming_it() -> None:
    with pytest.raises(BackendSelectionError) as caught:
        plugins.register(selected(plugins.FIREWALL, "typo", Misspelt()),
                         selected(plugins.LINK, "memlink", MemoryLink()), (), no_warning)
    assert "firewall backend 'typo' marks project_cleand with @hookimpl" in str(caught.value)
    assert "misspelt?" in str(caught.value)


def test_an_observer_with_a_misspelt_hook_is_left_out_with_a_warning() -> None:
    class Typo:
        @hookimpl
        def project_cleand(self, project) -> None:
            pass

    warnings: list[str] = []
    plugins.register(selected(plugins.FIREWALL, "mem", MemoryFirewall()),
                     selected(plugins.LINK, "memlink", MemoryLink()), [("typo", Typo())],
                     warnings.append)
    assert len(warnings) == 1 and "project_cleand" in warnings[0]


@pytest.mark.parametrize("api, said", [(None, "declares no plugin API version"),
                                       (1, "was written for plugin API 1")])
def test_a_backend_of_another_plugin_api_is_refused(api, said: str) -> None:
    class Old(MemoryFirewall):
        locker_api = api

    with pytest.raises(BackendSelectionError, match=said):
        plugins.register(selected(plugins.FIREWALL, "old", Old()),
                         selected(plugins.LINK, "memlink", MemoryLink()), (), no_warning)


class Early:
    def __init__(self, heard: list[str]) -> None:
        self.heard = heard

    @hookimpl(tryfirst=True)
    def project_cleaned(self, project: str) -> None:
        self.heard.append("early")


class Late:
    def __init__(self, heard: list[str]) -> None:
        self.heard = heard

    @hookimpl(trylast=True)
    def project_cleaned(self, project: str) -> None:
        self.heard.append("late")


class Wrapper:
    def __init__(self, heard: list[str]) -> None:
        self.heard = heard

    @hookimpl(hookwrapper=True)
    def project_cleaned(self, project: str):
        self.heard.append("before")
        yield
        self.heard.append("after")


def test_events_go_through_pluggy_with_order_wrappers_and_tracing() -> None:
    heard: list[str] = []
    traced: list[str] = []
    warnings: list[str] = []
    manager = plugins.register(
        selected(plugins.FIREWALL, "mem", MemoryFirewall()),
        selected(plugins.LINK, "memlink", MemoryLink()),
        [("late", Late(heard)), ("raiser", Raiser()), ("early", Early(heard)),
         ("wrapper", Wrapper(heard))], warnings.append)
    plugins.trace_to(manager, traced.append)
    plugins.emit(manager, "project_cleaned", warnings.append, project="shop")
    plugins.emit(manager, "container_started", warnings.append, project="shop",
                 container="web", address=None)
    assert heard == ["before", "early", "late", "after"]
    assert any("project_cleaned" in line for line in traced)
    assert warnings == ["The plugin 'raiser' failed on container_started: observer is broken"]


def test_a_backend_in_the_wrong_role_is_refused() -> None:
    with pytest.raises(BackendSelectionError):
        plugins.register(selected(plugins.FIREWALL, "a", MemoryLink()),
                         selected(plugins.LINK, "b", MemoryLink()), (), no_warning)


def test_an_observer_that_does_not_validate_is_a_warning() -> None:
    warnings: list[str] = []
    manager = plugins.register(selected(plugins.FIREWALL, "mem", MemoryFirewall()),
                               selected(plugins.LINK, "memlink", MemoryLink()),
                               [("misnamed", MisnamedListener())], warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith("The plugin 'misnamed' was not loaded:")
    assert manager.hook.project_cleaned.get_hookimpls() == []


# ---------------------------------------------------------------- observers

def test_load_observers_loads_all_and_warns_about_the_broken(entry_points) -> None:
    entry_points[plugins.OBSERVERS] = [
        ("listener", here("Listener"), "locker-listener"),
        ("ghost", "no_such_module_anywhere:Plugin", "locker-ghost"),
        ("broken", here("RaisingConstructor"), "locker-broken"),
    ]
    warnings: list[str] = []
    loaded = plugins.load_observers(warnings.append)
    assert [name for name, _ in loaded] == ["listener"]
    assert isinstance(loaded[0][1], Listener)
    assert len(warnings) == 2
    assert any(w.startswith("The plugin 'ghost' was not loaded") for w in warnings)
    assert any("'broken' was not loaded: cannot open /dev/foo" in w for w in warnings)


def test_trace_reports_hook_calls() -> None:
    lines: list[str] = []
    manager = plugins.new_manager(MemoryFirewall(), MemoryLink())
    plugins.trace_to(manager, lines.append)
    manager.hook.find_bridge(name="locker_shop")
    assert any("find_bridge" in line for line in lines)


class MisnamedAvailability:
    @hookimpl
    def firewall_availability(self, verbose):  # the spec takes no argument
        return Availability(True, "never asked")


def test_an_availability_hook_that_does_not_validate_is_an_answer() -> None:
    answer = plugins.availability(plugins.FIREWALL, MisnamedAvailability())
    assert not answer.usable
    assert answer.reason.startswith("its availability check failed: ")


def test_two_distributions_with_one_backend_name_is_an_error(entry_points) -> None:
    entry_points[plugins.FIREWALL] = [("nftables", MEMORY_FIREWALL, "locker-nftables"),
                                      ("nftables", here("ManualFirewall"), "nft-fork")]
    with pytest.raises(BackendError, match="The firewall backend 'nftables' cannot be loaded"):
        plugins.select(plugins.FIREWALL, "nftables", "command line", no_warning)


class Tunable(MemoryFirewall):
    SETTINGS = {"table": str, "retries": int, "strict": bool}

    def __init__(self, table: str = "locker", retries: int = 1, strict: bool = False) -> None:
        super().__init__()
        self.table, self.retries, self.strict = table, retries, strict


def test_a_backend_gets_the_host_files_settings_checked_against_what_it_declares(
        entry_points) -> None:
    from locker.project import Setting

    firewalls(entry_points, tunable=here("Tunable"))
    where = "/etc/locker/locker.yaml:4: backends.tunable"
    chosen = plugins.select(plugins.FIREWALL, "tunable", "command line", no_warning, {
        "tunable": {"table": Setting("mine", f"{where}.table"),
                    "retries": Setting("3", f"{where}.retries"),
                    "strict": Setting("true", f"{where}.strict")}})
    assert (chosen.plugin.table, chosen.plugin.retries, chosen.plugin.strict) == ("mine", 3, True)
    with pytest.raises(ConfigError) as caught:
        plugins.load(plugins.FIREWALL, "tunable", {
            "tabel": Setting("x", f"{where}.tabel"), "retries": Setting("many", f"{where}.retries")})
    assert caught.value.exit_status == 2
    assert caught.value.problems == [
        f"{where}.tabel: unknown setting of the firewall backend 'tunable', which takes "
        "retries, strict, table",
        f'{where}.retries: "many": not a whole number']


# ------------------------------------- the suites' contract check (locker.testing)

class LacksRemoveLink(MemoryFirewall):
    remove_link = None  # as if never written


class UnmarkedCleanup(MemoryFirewall):
    def cleanup(self, project):  # no @hookimpl: Locker would never call it
        super().cleanup(project)


class WrongArguments(MemoryFirewall):
    @hookimpl
    def add_forward(self, forward):  # the hookspec says forwards
        super().add_forward([forward])


def test_the_contract_check_passes_a_complete_backend() -> None:
    from locker.testing.contract import hook_problems

    assert hook_problems(plugins.FIREWALL, MemoryFirewall()) == []
    assert hook_problems(plugins.LINK, MemoryLink()) == []


@pytest.mark.parametrize("broken, said", [
    (LacksRemoveLink, "lacks the hook remove_link(links)"),
    (UnmarkedCleanup, "has cleanup but it is not marked @hookimpl"),
    (WrongArguments, "add_forward takes (forward); the hookspec says (forwards)"),
])
def test_the_suites_name_what_breaks_the_contract(broken, said: str) -> None:
    from locker.testing.firewall_suite import FirewallBackendTests

    suite = FirewallBackendTests()
    with pytest.raises(AssertionError, match=re.escape(said)):
        suite.test_the_backend_keeps_the_contract(broken())


class LacksRemoveBridge(MemoryLink):
    remove_bridge = None  # as if never written


class WrongLinkArguments(MemoryLink):
    @hookimpl
    def ensure_bridge(self, bridge):  # the hookspec says (bridge, adopt)
        return super().ensure_bridge(bridge, False)


@pytest.mark.parametrize("broken, said", [
    (LacksRemoveBridge, "lacks the hook remove_bridge(name)"),
    (WrongLinkArguments, "ensure_bridge takes (bridge); the hookspec says (bridge, adopt)"),
])
def test_the_link_suite_names_what_breaks_the_contract(broken, said: str) -> None:
    from locker.testing.link_suite import LinkBackendTests

    with pytest.raises(AssertionError, match=re.escape(said)):
        LinkBackendTests().test_the_backend_keeps_the_contract(broken())


def test_the_contract_check_needs_the_plugin_api() -> None:
    from locker.testing.contract import hook_problems

    class Unversioned(MemoryFirewall):
        locker_api = None

    assert any("declares no plugin API version" in p
               for p in hook_problems(plugins.FIREWALL, Unversioned()))


SKIPPING_SUITE = """
from locker.testing.firewall_suite import FirewallBackendTests
from locker.testing.memory import MemoryFirewall


class TestDeclared(FirewallBackendTests):
    skips = SKIPS

    def make_backend(self):
        return MemoryFirewall()
"""


def run_suite(tmp_path: Path, skips: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_declared.py").write_text(SKIPPING_SUITE.replace("SKIPS", skips))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "locker.testing.pytest_plugin",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path), *args],
        capture_output=True, text=True, env={**os.environ, "LOCKER_TESTS_NO_SKIP": "1"})


def test_a_declared_skip_skips_also_where_skips_are_forbidden(tmp_path: Path) -> None:
    done = run_suite(tmp_path, '{"failed_transaction_leaves_kernel_unchanged": "no kernel"}',
                     "-k", "failed_transaction", "-rs")
    assert "1 skipped" in done.stdout and "failed" not in done.stdout, done.stdout
    assert "declared by TestDeclared: no kernel" in done.stdout


def test_a_declared_skip_of_no_such_test_fails_naming_it(tmp_path: Path) -> None:
    done = run_suite(tmp_path, '{"failed_batch": "old name"}', "-k", "failed_transaction")
    assert "1 error" in done.stdout and done.returncode == 1, done.stdout
    assert "TestDeclared.skips names failed_batch, which are not tests of the suite" \
        in done.stdout


# ------------------------------------------------ the README's ten-line test file

#: The checkout's plugins and examples; the core's unpacked sdist, whose
#: unit tests build-dists runs, holds neither.
def in_checkout(test):
    return pytest.mark.may_skip(pytest.mark.skipif(
        not (Path(__file__).resolve().parents[2] / "examples").is_dir(),
        reason="the plugins' and examples' folders are not here (the core's unpacked sdist)")(test))


@in_checkout
def test_the_readme_shows_the_example_backends_whole_test_file() -> None:
    """The README's plugin author section shows, verbatim, the example
    backend's conformance test file, and that file is at most ten lines."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    test_file = root / "examples/locker-nftcli/tests/test_nftcli_conformance.py"
    text = test_file.read_text()
    section = readme[readme.index("## Writing a plugin"):]
    shown = re.search(r"```python\n(.*?)```", section, re.S)
    assert shown, "the README's plugin section shows no python block"
    assert shown.group(1) == text
    assert len(text.splitlines()) <= 10


@pytest.mark.parametrize("path", [
    "plugins/nftables/tests/test_nftables_conformance.py",
    "plugins/iptables/tests/test_iptables_conformance.py",
    "plugins/ipr2/tests/test_ipr2_conformance.py",
    "examples/locker-nftcli/tests/test_nftcli_conformance.py",
])
@in_checkout
def test_a_backends_conformance_test_file_is_at_most_ten_lines(path: str) -> None:
    root = Path(__file__).resolve().parents[2]
    assert len((root / path).read_text().splitlines()) <= 10
