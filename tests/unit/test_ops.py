"""The operations over in-memory backends and runtime: what each command
changes, what it leaves alone, and how it reports failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from locker import hookimpl, plugins
from locker.context import Context
from locker.journal import Change
from locker.state import HostState
from locker.errors import (BackendError, ConfigError, ContainerError, Failures, LockerError,
                           raise_all)
from locker.model import Bridge, BridgeState, Forward, Link, Ruleset
from locker.ops import cleanup, lifecycle
from locker.ops.lifecycle import StartOptions
from locker.ops.status import SCHEMA_VERSION, status, to_json
from locker.planner import HostsEntry
from locker.project import (CgroupSetting, CloneSource, ContainerSpec, LinkSpec, PortSpec,
                            Project, TemplateSource, VolumeSpec)
from locker.runtime import ABSENT, FROZEN, RUNNING, STOPPED
from locker.testing.memory import MemoryFirewall, MemoryLink, MemoryRuntime

IP = IPv4Address
BUSYBOX = TemplateSource("busybox")
HOST_RESOLV = "nameserver 127.0.0.53\nnameserver 192.0.2.53\n"


class Lock:
    """The host lock as a test sees it: counts, and refuses nesting (the
    real lock would wait for itself until its timeout)."""

    def __init__(self) -> None:
        self.held = False
        self.taken = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        assert not self.held, "the host lock was taken while held"
        self.held, self.taken = True, self.taken + 1
        try:
            yield
        finally:
            self.held = False


class LockedFirewall(MemoryFirewall):
    """Checks that every change to the rules happens under the host lock."""

    def __init__(self, lock: Lock) -> None:
        super().__init__()
        self.lock = lock

    def _commit(self, **changes) -> None:
        assert self.lock.held, "a firewall change outside the host lock"
        super()._commit(**changes)


class LockedLink(MemoryLink):
    """Checks that a subnet is chosen and its bridge made under one lock."""

    def __init__(self, lock: Lock) -> None:
        super().__init__()
        self.lock = lock

    @hookimpl
    def allocate_subnet(self, bridge: str, pool, reserved) -> IPv4Network:
        assert self.lock.held, "a subnet chosen outside the host lock"
        return super().allocate_subnet(bridge, pool, reserved)

    @hookimpl
    def ensure_bridge(self, bridge: Bridge, adopt: bool):
        assert self.lock.held, "a bridge made outside the host lock"
        return super().ensure_bridge(bridge, adopt)


class Recorder:
    """An observer that writes down every event."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    @hookimpl
    def container_started(self, project, container, address):
        self.events.append(("started", project, container, address))

    @hookimpl
    def container_stopped(self, project, container):
        self.events.append(("stopped", project, container))

    @hookimpl
    def rules_changed(self, project, added, removed):
        self.events.append(("rules", project, added, removed))

    @hookimpl
    def project_cleaned(self, project):
        self.events.append(("cleaned", project))


class Raiser:
    @hookimpl
    def container_started(self, project, container, address):
        raise RuntimeError("observer is broken")


def shop_project(path: Path, name: str = "shop") -> Project:
    return Project(name, path / name / "locker.yaml", (
        ContainerSpec("web", BUSYBOX,
                      ports=(PortSpec(8080 if name == "shop" else 8081, 80),
                             PortSpec(5353 if name == "shop" else 5354, 53, "udp",
                                      IP("192.0.2.10"))),
                      links=(LinkSpec("db", "database"),), fqdn="web.example.net",
                      dns=("192.0.2.99", "$bridge", "$copy"),
                      volumes=(VolumeSpec("/srv/log", "/var/log"),),
                      cgroup=(CgroupSetting("cpu.shares", "512"),)),
        ContainerSpec("db", BUSYBOX, ports=(PortSpec(5432 if name == "shop" else 6432, 5432),),
                      fqdn="db.example.net"),
        ContainerSpec("cache", BUSYBOX, links=(LinkSpec("db"),)),
    ))


@dataclass
class Env:
    ctx: Context
    firewall: MemoryFirewall
    link: MemoryLink
    runtime: MemoryRuntime
    lock: Lock
    said: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)

    def lxc(self, name: str):
        return self.runtime.containers[self.ctx.lxc(name)]

    def create_all(self) -> None:
        for name in self.ctx.project.container_names:
            self.runtime.create(self.ctx.lxc(name), BUSYBOX)


def make_env(tmp_path: Path, project: Project | None = None, *, share: Env | None = None,
             observers: tuple = (), link: MemoryLink | None = None) -> Env:
    """An Env for ``project``; with ``share``, on the same kernel and LXC."""
    project = project or shop_project(tmp_path)
    lock = share.lock if share else Lock()
    firewall = share.firewall if share else LockedFirewall(lock)
    link = share.link if share else (link or LockedLink(lock))
    runtime = share.runtime if share else MemoryRuntime()
    manager = plugins.new_manager(firewall, link, *observers)
    said: list[str] = []
    warned: list[str] = []
    state = share.ctx.state if share else HostState(tmp_path / "state", warned.append)
    ctx = Context(project, manager, runtime, say=said.append, warn=warned.append, lock=lock,
                  host_resolv=lambda: HOST_RESOLV, host_hosts=tmp_path / "hosts",
                  state=state, firewall_name="memory", link_name="memory",
                  ip_forwarding_off=lambda: not link.ip_forward, foreign_dnats=lambda: [],
                  cgroup2=lambda: False)
    return Env(ctx, firewall, link, runtime, lock, said, warned)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = make_env(tmp_path)
    env.create_all()
    return env


def changed(env: Env, action) -> list[Change]:
    """The changes ``action`` made, as the command's journal recorded them."""
    before = len(env.ctx.journal.changes)
    action()
    return env.ctx.journal.changes[before:]


def ports(env: Env, containers=None, keep: bool = True) -> list[Change]:
    return changed(env, lambda: lifecycle.reconcile(env.ctx, "ports", containers, keep))


def links(env: Env, containers=None, keep: bool = True) -> list[Change]:
    return changed(env, lambda: lifecycle.reconcile(env.ctx, "links", containers, keep))


def fwd(container: str, host_port: int, ip: str, port: int, proto: str = "tcp",
        host_ip: str | None = None, project: str = "shop") -> Forward:
    return Forward(project, container, host_port, IP(ip), port, proto,
                   IP(host_ip) if host_ip else None)


WEB, DB, CACHE = "10.1.1.2", "10.1.1.3", "10.1.1.4"
WEB_FORWARDS = {fwd("web", 8080, WEB, 80), fwd("web", 5353, WEB, 53, "udp", "192.0.2.10")}
DB_FORWARDS = {fwd("db", 5432, DB, 5432)}
WEB_DB = Link("shop", "web", IP(WEB), "db", IP(DB))
CACHE_DB = Link("shop", "cache", IP(CACHE), "db", IP(DB))
SHOP_BRIDGE = Bridge("shop", "locker_shop", IPv4Network("10.1.1.0/24"))


# ------------------------------------------------------------------- start

def test_start_brings_up_the_network_and_every_container(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))

    assert env.link.bridges["locker_shop"].addresses == (IPv4Interface("10.1.1.1/24"),)
    assert env.link.bridges["locker_shop"].up
    assert env.link.ip_forward
    assert env.firewall.rules == Ruleset(nat=frozenset({SHOP_BRIDGE}),
                                         forwards=frozenset(WEB_FORWARDS | DB_FORWARDS),
                                         links=frozenset({WEB_DB, CACHE_DB}), jumps=True)
    for name, ip in (("web", WEB), ("db", DB), ("cache", CACHE)):
        assert env.lxc(name).state == RUNNING
        assert env.lxc(name).config["address"] == IPv4Interface(f"{ip}/24")
        assert env.lxc(name).config["gateway"] == IP("10.1.1.1")
        assert env.lxc(name).config["bridge"] == "locker_shop"
    assert "web: started (10.1.1.2)" in env.said


def test_start_writes_what_the_container_finds_at_boot(env: Env) -> None:
    lifecycle.start(env.ctx, ["web", "db"])
    web = env.lxc("web")
    assert web.files["/etc/resolv.conf"] == (
        "nameserver 192.0.2.99\nnameserver 10.1.1.1\nnameserver 192.0.2.53\n")
    assert web.files["/etc/hostname"] == "web\n"
    assert web.files["/etc/hosts"] == (
        "127.0.0.1\tlocalhost\n"
        "10.1.1.2\tweb.example.net web\t# locker\n"
        "10.1.1.3\tdb.example.net db database\t# locker\n")
    assert web.config["mounts"] == (VolumeSpec("/srv/log", "/var/log"),)
    assert web.config["cgroup"] == (CgroupSetting("cpu.shares", "512"),)
    assert web.config["hostname"] == "web"
    assert "/etc/resolv.conf" not in env.lxc("db").files  # no dns: the image's own


def test_ip_forwarding_is_reported_once(env: Env) -> None:
    lifecycle.start(env.ctx, ["db"])
    lifecycle.start(env.ctx, ["web"])
    assert sum("forwarding was off" in line for line in env.said) == 1


def test_a_second_start_and_ports_change_nothing(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    rules = env.firewall.rules
    assert changed(env, lambda: lifecycle.start(env.ctx, env.ctx.select([]))) == []
    assert "web: already running" in env.said
    assert ports(env) == [] and links(env) == []
    assert env.firewall.rules == rules


def test_ports_with_nothing_to_do_makes_no_transaction(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    transactions = env.firewall.transactions
    ports(env)
    links(env)
    assert env.firewall.transactions == transactions


def test_addresses_are_kept_across_restarts(env: Env) -> None:
    lifecycle.start(env.ctx, ["cache"])
    assert env.lxc("cache").config["address"] == IPv4Interface(f"{CACHE}/24")
    lifecycle.stop(env.ctx, ["cache"])
    lifecycle.start(env.ctx, ["web", "cache"], StartOptions(restart=True))
    assert env.lxc("cache").config["address"] == IPv4Interface(f"{CACHE}/24")
    assert env.lxc("web").config["address"] == IPv4Interface(f"{WEB}/24")


def test_an_existing_bridge_keeps_its_subnet(tmp_path: Path) -> None:
    link = MemoryLink(used=[IPv4Network("10.1.1.0/24")])
    env = make_env(tmp_path, link=link)
    env.create_all()
    lifecycle.start(env.ctx, ["web"])
    assert env.link.bridges["locker_shop"].network == IPv4Network("10.1.2.0/24")
    assert env.lxc("web").config["address"] == IPv4Interface("10.1.2.2/24")


def test_start_without_ports_or_links(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]), StartOptions(ports=False, links=False))
    assert env.firewall.rules.nat == {SHOP_BRIDGE}
    assert env.firewall.rules.forwards == frozenset()
    assert env.firewall.rules.links == frozenset()


def test_start_starts_what_exists_and_reports_what_is_missing(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env.runtime.create(env.ctx.lxc("web"), BUSYBOX)
    with pytest.raises(LockerError, match="not created: db, cache") as caught:
        lifecycle.start(env.ctx, env.ctx.select([]))
    assert caught.value.exit_status == 1
    assert "locker create" in str(caught.value)
    assert env.said[:2] == ["db: not created", "cache: not created"]
    assert env.lxc("web").state == RUNNING
    assert "web: started (10.1.1.2)" in env.said


def test_one_container_failing_to_start_does_not_stop_the_others(env: Env) -> None:
    env.runtime.fail_start.add(env.ctx.lxc("db"))
    with pytest.raises(LockerError) as caught:
        lifecycle.start(env.ctx, env.ctx.select([]))
    assert str(caught.value).startswith("db: ")
    assert "shop_db failed to start" in str(caught.value)
    assert env.lxc("web").state == RUNNING
    assert env.lxc("cache").state == RUNNING
    assert env.lxc("db").state == STOPPED
    # the rules of what runs are there, nothing of what does not
    assert env.firewall.rules.forwards == WEB_FORWARDS
    assert env.firewall.rules.links == frozenset()


def test_a_frozen_container_is_thawed_by_start(env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    lifecycle.freeze(env.ctx, ["web"])
    assert env.lxc("web").state == FROZEN
    lifecycle.start(env.ctx, ["web"])
    assert env.lxc("web").state == RUNNING


def test_restart_stops_and_starts_again(env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    env.lxc("web").files["/etc/hostname"] = "changed\n"
    lifecycle.start(env.ctx, ["web"], StartOptions(restart=True))
    assert env.lxc("web").files["/etc/hostname"] == "web\n"
    assert env.said.count("web: started (10.1.1.2)") == 2


def test_add_hosts_writes_the_hosts_file_and_keeps_other_lines(tmp_path: Path, env: Env) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n"
                     "10.1.1.9\tweb.shop\t# locker:shop\n"
                     "10.1.2.2\tweb.blog\t# locker:blog\n")
    lifecycle.start(env.ctx, ["web", "db"], StartOptions(add_hosts=True))
    assert hosts.read_text() == (
        "127.0.0.1 localhost\n"
        "10.1.2.2\tweb.blog\t# locker:blog\n"
        "10.1.1.2\tweb.example.net web.shop\t# locker:shop\n"
        "10.1.1.3\tdb.example.net db.shop\t# locker:shop\n")


def test_cleanup_removes_the_projects_host_names_and_keeps_other_lines(
        tmp_path: Path, env: Env) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.1.2.2\tweb.blog\t# locker:blog\n")
    lifecycle.start(env.ctx, ["web"], StartOptions(add_hosts=True))
    assert "web.shop" in hosts.read_text()
    cleanup.cleanup(env.ctx)
    assert hosts.read_text() == "127.0.0.1 localhost\n10.1.2.2\tweb.blog\t# locker:blog\n"


def test_cleanup_without_host_names_does_not_create_the_hosts_file(
        tmp_path: Path, env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    cleanup.cleanup(env.ctx)
    assert not (tmp_path / "hosts").exists()


def test_failures_keep_the_gravest_exit_status_and_the_originals() -> None:
    bad_key = ConfigError("bad key", problems=["locker.yaml:3: ports: ..."])
    with pytest.raises(Failures) as caught:
        raise_all([ContainerError("web", LockerError("failed")), ContainerError("db", bad_key)])
    assert str(caught.value) == "web: failed\ndb: bad key"
    assert caught.value.exit_status == 2
    assert caught.value.problems == ["locker.yaml:3: ports: ..."]
    assert caught.value.errors[1].original is bad_key
    with pytest.raises(LockerError) as caught:
        raise_all([LockerError("web: failed")])
    assert type(caught.value) is LockerError
    raise_all([])


class PluginError(LockerError):
    def __init__(self, code: int) -> None:
        super().__init__(f"plugin failure {code}")
        self.code = code


def test_a_plugins_own_error_keeps_its_type_through_each() -> None:
    failures: list[LockerError] = []
    lifecycle.each(["web"], lambda name: (_ for _ in ()).throw(PluginError(7)), failures)
    assert isinstance(failures[0].original, PluginError)
    assert failures[0].original.code == 7
    assert str(failures[0]) == "web: plugin failure 7"


# -------------------------------------------------------------------- stop

def test_stop_removes_the_containers_forwards_and_links(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    lifecycle.stop(env.ctx, ["web"])
    assert env.lxc("web").state == STOPPED
    assert env.firewall.rules.forwards == DB_FORWARDS
    assert env.firewall.rules.links == {CACHE_DB}
    assert env.firewall.rules.nat == {SHOP_BRIDGE}


def test_stopping_a_peer_removes_the_links_to_it(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    lifecycle.stop(env.ctx, ["db"])
    assert env.firewall.rules.links == frozenset()
    assert env.firewall.rules.forwards == WEB_FORWARDS
    assert env.lxc("web").state == RUNNING


def test_stop_without_ports_keeps_the_forwards(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    lifecycle.stop(env.ctx, ["web"], ports=False)
    assert env.firewall.rules.forwards == WEB_FORWARDS | DB_FORWARDS
    assert env.firewall.rules.links == {CACHE_DB}


def test_stop_of_a_stopped_or_frozen_container(env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    lifecycle.freeze(env.ctx, ["web"])
    lifecycle.stop(env.ctx, ["web", "db"])
    assert env.lxc("web").state == STOPPED
    assert "web: stopped" in env.said
    assert "db: already stopped" in env.said


def test_rules_of_containers_stopped_behind_lockers_back_go(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    env.lxc("db").state = STOPPED  # crashed, or lxc-stop by hand
    removed_forwards = ports(env)
    removed_links = links(env)
    assert {(c.subject, c.verb, c.detail) for c in removed_forwards} == {
        ("db", "removed", str(f)) for f in DB_FORWARDS}
    assert {(c.subject, c.verb, c.what) for c in removed_links} >= {
        ("web", "removed", "link"), ("cache", "removed", "link")}
    assert env.firewall.rules.forwards == WEB_FORWARDS
    assert env.firewall.rules.links == frozenset()


def test_rules_of_containers_started_behind_lockers_back_come(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    env.firewall.rules = Ruleset(nat=frozenset({SHOP_BRIDGE}), jumps=True)  # flushed by hand
    added = ports(env, ["db"])
    assert [(c.subject, c.verb, c.detail) for c in added] == [
        ("db", "added", str(f)) for f in DB_FORWARDS]
    assert env.firewall.rules.forwards == DB_FORWARDS


def test_frozen_containers_keep_their_rules(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    lifecycle.freeze(env.ctx, ["db"])
    assert ports(env) == [] and links(env) == []


def test_rmports_and_rmlinks_remove_only_the_scope(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    ports(env, ["web"], keep=False)
    links(env, ["cache"], keep=False)
    assert env.firewall.rules.forwards == DB_FORWARDS
    assert env.firewall.rules.links == {WEB_DB}


def test_links_rewrites_the_hosts_files(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    web = env.lxc("web")
    web.files["/etc/hosts"] += "10.9.9.9\tstale\t# locker\n"
    links(env, ["web"])
    assert "stale" not in web.files["/etc/hosts"]
    assert "db.example.net db database\t# locker" in web.files["/etc/hosts"]
    links(env, ["web"], keep=False)
    assert web.files["/etc/hosts"] == (
        "127.0.0.1\tlocalhost\n10.1.1.2\tweb.example.net web\t# locker\n")


# ----------------------------------------------------------- other project

@pytest.fixture
def two(tmp_path: Path) -> tuple[Env, Env]:
    shop = make_env(tmp_path)
    blog = make_env(tmp_path, shop_project(tmp_path, "blog"), share=shop)
    for env in (shop, blog):
        env.create_all()
        lifecycle.start(env.ctx, env.ctx.select([]))
    return shop, blog


def test_projects_get_their_own_bridges(two: tuple[Env, Env]) -> None:
    shop, blog = two
    assert shop.link.bridges["locker_shop"].network == IPv4Network("10.1.1.0/24")
    assert shop.link.bridges["locker_blog"].network == IPv4Network("10.1.2.0/24")
    assert blog.lxc("web").config["address"] == IPv4Interface("10.1.2.2/24")


def test_another_projects_rules_survive_stop_ports_and_cleanup(two: tuple[Env, Env]) -> None:
    shop, blog = two
    blog_rules = shop.firewall.rules.of_project("blog")
    assert len(blog_rules.forwards) == 3 and len(blog_rules.links) == 2
    shop.lxc("web").state = STOPPED
    lifecycle.reconcile(shop.ctx, "ports", None)
    lifecycle.reconcile(shop.ctx, "links", None)
    lifecycle.stop(shop.ctx, ["db"])
    cleanup.cleanup(shop.ctx)
    assert shop.firewall.rules.of_project("blog") == blog_rules
    assert shop.firewall.rules.of_project("shop") == Ruleset(jumps=True)
    assert "locker_blog" in shop.link.bridges
    assert blog.lxc("web").state == RUNNING


# ----------------------------------------------------------------- cleanup

def test_cleanup_removes_rules_and_bridge_and_stops_containers(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    cleanup.cleanup(env.ctx)
    assert env.firewall.rules == Ruleset(jumps=True)  # the chains and jumps stay
    assert env.link.bridges == {}
    assert {c.state for c in env.runtime.containers.values()} == {STOPPED}
    assert env.said[-1] == "shop: removed bridge locker_shop"


def test_cleanup_tries_every_step_and_reports_the_failure(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    env.firewall.fail_next = "the kernel said no."
    with pytest.raises(LockerError) as caught:
        cleanup.cleanup(env.ctx)
    message = str(caught.value)
    assert message.startswith("Cleanup was incomplete")
    assert "removing rules: the kernel said no." in message
    # the steps after the failed one still ran, and a second cleanup finishes
    assert {c.state for c in env.runtime.containers.values()} == {STOPPED}
    assert env.link.bridges == {}
    assert env.firewall.rules.of_project("shop").forwards
    cleanup.cleanup(env.ctx)
    assert env.firewall.rules == Ruleset(jumps=True)


class StuckLink(MemoryLink):
    @hookimpl
    def remove_bridge(self, name: str) -> None:
        raise BackendError(f"{name} is busy.")


def test_cleanup_reports_a_bridge_that_stays(tmp_path: Path) -> None:
    env = make_env(tmp_path, link=StuckLink())
    env.create_all()
    lifecycle.start(env.ctx, env.ctx.select([]))
    with pytest.raises(LockerError, match="removing the bridge: locker_shop is busy."):
        cleanup.cleanup(env.ctx)
    assert env.firewall.rules == Ruleset(jumps=True)
    assert {c.state for c in env.runtime.containers.values()} == {STOPPED}


def test_cleanup_of_a_project_that_never_ran(env: Env) -> None:
    assert changed(env, lambda: cleanup.cleanup(env.ctx)) == []
    assert env.link.bridges == {}
    assert env.firewall.transactions == 0


def test_no_operation_takes_the_lock_twice(env: Env) -> None:
    # Lock refuses nesting; these would fail inside if any operation nested it
    lifecycle.start(env.ctx, env.ctx.select([]))
    lifecycle.stop(env.ctx, ["web"])
    cleanup.cleanup(env.ctx)


# ------------------------------------------------------------------ status

def test_status_reflects_what_is_there(env: Env) -> None:
    lifecycle.start(env.ctx, ["web", "db"])
    env.lxc("db").state = STOPPED
    result = status(env.ctx)
    assert result.project == "shop"
    assert result.bridge_name == "locker_shop"
    assert result.bridge.addresses == (IPv4Interface("10.1.1.1/24"),)
    by_name = {c.name: c for c in result.containers}
    assert [c.name for c in result.containers] == ["web", "db", "cache"]
    assert by_name["web"].state == RUNNING
    assert by_name["web"].lxc_name == "shop_web"
    assert by_name["web"].addresses == (IP(WEB),)
    assert by_name["web"].hosts == (HostsEntry(IP(WEB), ("web.example.net", "web")),
                                    HostsEntry(IP(DB), ("db.example.net", "db", "database")))
    assert by_name["db"].state == STOPPED
    assert by_name["db"].configured == IPv4Interface(f"{DB}/24")
    assert by_name["db"].addresses == ()
    assert by_name["cache"].configured is None  # created, never started
    # the kernel still has db's forwards: status shows them, not the file's wish
    assert result.rules.forwards == WEB_FORWARDS | DB_FORWARDS


def test_status_marks_rules_of_containers_that_do_not_run_as_stale(env: Env) -> None:
    lifecycle.start(env.ctx, ["web", "db"])
    env.lxc("db").state = STOPPED  # behind Locker's back
    result = status(env.ctx)
    assert {f for f in result.rules.forwards if result.is_stale(f)} == DB_FORWARDS
    assert {f for f in result.rules.forwards if not result.is_stale(f)} == WEB_FORWARDS
    assert result.is_stale(WEB_DB)  # its peer is down
    document = to_json(result)
    assert {f["container"] for f in document["rules"]["forwards"] if f["stale"]} == {"db"}
    assert document["rules"]["links"][0]["stale"] is True


def test_status_marks_a_rule_with_another_address_as_stale(env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    moved = fwd("web", 9999, "10.1.1.99", 80)
    env.firewall.rules = replace(env.firewall.rules,
                                 forwards=env.firewall.rules.forwards | {moved})
    result = status(env.ctx)
    assert result.is_stale(moved)
    assert not any(result.is_stale(f) for f in WEB_FORWARDS)


def test_status_shows_a_bridge_of_the_projects_name_that_is_not_lockers(
        tmp_path: Path) -> None:
    env = make_env(tmp_path)
    foreign = BridgeState("locker_shop", (IPv4Interface("10.9.9.1/24"),), True, owned=False)
    env.link.bridges["locker_shop"] = foreign
    result = status(env.ctx)
    assert result.bridge == foreign
    assert to_json(result)["bridge"]["owned"] is False


def test_status_of_nothing(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    result = status(env.ctx)
    assert result.bridge is None
    assert {c.state for c in result.containers} == {ABSENT}
    assert result.rules == Ruleset()


def test_status_json(env: Env) -> None:
    lifecycle.start(env.ctx, ["web", "db"])
    document = json.loads(json.dumps(to_json(status(env.ctx))))
    assert document["schema_version"] == SCHEMA_VERSION == 1
    assert document["project"] == "shop"
    assert document["bridge"] == {"name": "locker_shop", "exists": True, "owned": True,
                                  "up": True, "addresses": ["10.1.1.1/24"]}
    web = document["containers"][0]
    assert web == {"name": "web", "lxc_name": "shop_web", "state": "RUNNING",
                   "configured_address": "10.1.1.2/24", "addresses": ["10.1.1.2"],
                   "hosts": [{"address": WEB, "names": ["web.example.net", "web"],
                              "written_by_locker": True},
                             {"address": DB, "names": ["db.example.net", "db", "database"],
                              "written_by_locker": True}],
                   "problem": None}
    assert document["containers"][2]["configured_address"] is None
    assert document["in_place"] is True
    assert {"kind": "forward", "status": "in place", "subject": "db",
            "value": "5432/tcp -> 10.1.1.3:5432", "reason": "", "fix": ""} in document["items"]
    rules = document["rules"]
    assert rules["chains_and_jumps"] is True
    assert rules["nat"] == [{"bridge": "locker_shop", "network": "10.1.1.0/24",
                             "isolated": False, "network6": None}]
    assert rules["forwards"][0] == {"container": "db", "host_ip": None, "host_port": 5432,
                                    "protocol": "tcp", "container_ip": DB,
                                    "container_port": 5432, "count": 1, "stale": False}
    assert {"container": "web", "host_ip": "192.0.2.10", "host_port": 5353, "protocol": "udp",
            "container_ip": WEB, "container_port": 53, "count": 1,
            "stale": False} in rules["forwards"]
    assert rules["links"] == [{"container": "web", "container_ip": WEB,
                               "peer": "db", "peer_ip": DB, "stale": False}]


def test_status_json_of_nothing(tmp_path: Path) -> None:
    document = to_json(status(make_env(tmp_path).ctx))
    assert document["bridge"] == {"name": "locker_shop", "exists": False, "owned": False,
                                  "up": False, "addresses": []}
    assert document["rules"] == {"chains_and_jumps": False, "nat": [], "forwards": [],
                                 "links": []}
    json.dumps(document)


# ------------------------------------------------------ create, rm, others

def clone_project(path: Path) -> Project:
    return Project("shop", path / "locker.yaml", (
        ContainerSpec("copy2", CloneSource("copy1")),
        ContainerSpec("copy1", CloneSource("base")),
        ContainerSpec("base", BUSYBOX),
        ContainerSpec("outside", CloneSource("golden")),
    ))


def test_create_makes_clones_after_their_originals(tmp_path: Path) -> None:
    env = make_env(tmp_path, clone_project(tmp_path))
    env.runtime.create("golden", BUSYBOX)
    env.runtime.containers["golden"].files["/etc/motd"] = "golden\n"
    lifecycle.create(env.ctx, ["copy1", "base", "outside"])
    assert env.lxc("copy1").source == CloneSource("base")
    assert env.lxc("outside").files == {"/etc/motd": "golden\n"}  # not shop_golden


def test_create_orders_clones_of_clones(tmp_path: Path) -> None:
    env = make_env(tmp_path, clone_project(tmp_path))
    env.runtime.create("golden", BUSYBOX)
    lifecycle.create(env.ctx, env.ctx.select([]))
    assert set(env.runtime.containers) == {"golden", "shop_base", "shop_copy1", "shop_copy2",
                                           "shop_outside"}


def test_create_skips_existing_and_reports_containers_without_source(tmp_path: Path) -> None:
    project = Project("shop", tmp_path / "locker.yaml",
                      (ContainerSpec("a", BUSYBOX), ContainerSpec("b"), ContainerSpec("c", BUSYBOX)))
    env = make_env(tmp_path, project)
    env.runtime.create("shop_a", BUSYBOX)
    with pytest.raises(LockerError, match="^b: b has no template"):
        lifecycle.create(env.ctx, ["a", "b", "c"])
    assert "a: already created (shop_a)" in env.said
    assert "shop_c" in env.runtime.containers


def test_rm_refuses_running_containers(env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    with pytest.raises(LockerError, match="web: cannot remove it: it is running; run "
                       "`locker stop web` first, or `locker rm --force web`"):
        lifecycle.remove(env.ctx, ["web", "db"])
    assert env.lxc("web").state == RUNNING
    assert "shop_db" not in env.runtime.containers
    with pytest.raises(LockerError, match="not created: db"):
        lifecycle.remove(env.ctx, ["db"])
    assert "db: not created" in env.said
    lifecycle.remove(env.ctx, ["web"], force=True)
    assert "shop_web" not in env.runtime.containers
    assert env.said[-2:] == ["web: stopped", "web: removed (shop_web)"] or \
        "web: stopped" in env.said


def test_freeze_and_unfreeze(env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    lifecycle.freeze(env.ctx, ["web"])
    lifecycle.freeze(env.ctx, ["web"])  # frozen already: nothing to do
    assert env.lxc("web").state == FROZEN
    with pytest.raises(LockerError, match="db: cannot freeze it: it is stopped"):
        lifecycle.freeze(env.ctx, ["db"])
    lifecycle.freeze(env.ctx, ["web"], thaw=True)
    assert env.lxc("web").state == RUNNING
    assert [line for line in env.said if "frozen" in line or "thawed" in line] == [
        "web: frozen", "web: already frozen", "web: thawed"]


def test_cgroup_is_applied_to_running_containers_only(env: Env) -> None:
    lifecycle.start(env.ctx, ["web"])
    lifecycle.apply_cgroup(env.ctx, ["web", "db"])
    assert env.lxc("web").config["applied_cgroup"] == (CgroupSetting("cpu.shares", "512"),)
    assert "applied_cgroup" not in env.lxc("db").config
    assert "web: set cgroup cpu.shares=512" in env.said


# ----------------------------------------------------------------- context

def test_select_keeps_the_files_order_and_defaults_to_all(env: Env) -> None:
    assert env.ctx.select([]) == ("web", "db", "cache")
    assert env.ctx.select(["cache", "web"]) == ("web", "cache")


def test_select_rejects_unknown_names(env: Env) -> None:
    with pytest.raises(ConfigError) as caught:
        env.ctx.select(["web", "nope", "nada"])
    message = str(caught.value)
    assert message.startswith("nope, nada: no such container in ")
    assert "Its containers are: web, db, cache." in message
    assert caught.value.exit_status == 2


def test_context_names(env: Env) -> None:
    assert env.ctx.bridge_name == "locker_shop"
    assert env.ctx.lxc("web") == "shop_web"


# ------------------------------------------------------------------ events

def test_events_reach_observers(tmp_path: Path) -> None:
    recorder = Recorder()
    env = make_env(tmp_path, observers=(recorder,))
    env.create_all()
    lifecycle.start(env.ctx, ["web", "db"])
    lifecycle.stop(env.ctx, ["db"])
    cleanup.cleanup(env.ctx)
    kinds = [event[0] for event in recorder.events]
    assert ("started", "shop", "web", IP(WEB)) in recorder.events
    assert ("started", "shop", "db", IP(DB)) in recorder.events
    assert ("stopped", "shop", "db") in recorder.events
    assert kinds[-1] == "cleaned"
    rules = [event for event in recorder.events if event[0] == "rules"]
    assert rules[0][2] == Ruleset(nat=frozenset({SHOP_BRIDGE}))
    assert rules[1][2] == Ruleset(forwards=frozenset(WEB_FORWARDS | DB_FORWARDS),
                                  links=frozenset({WEB_DB}))
    assert rules[1][3] == Ruleset()
    assert env.warned == []


def test_a_raising_observer_is_a_warning_and_others_still_hear(tmp_path: Path) -> None:
    recorder = Recorder()
    env = make_env(tmp_path, observers=(Raiser(), recorder))
    env.create_all()
    lifecycle.start(env.ctx, ["web"])
    assert len(env.warned) == 1
    assert "failed on container_started: observer is broken" in env.warned[0]
    assert ("started", "shop", "web", IP(WEB)) in recorder.events
    assert env.lxc("web").state == RUNNING


def test_emit_passes_only_the_arguments_an_observer_asks_for(tmp_path: Path) -> None:
    heard = []

    class Terse:
        @hookimpl
        def container_started(self, container):
            heard.append(container)

    manager = plugins.new_manager(Terse())
    warned: list[str] = []
    plugins.emit(manager, "container_started", warned.append,
                 project="shop", container="web", address=None)
    assert heard == ["web"]
    assert warned == []


def test_containers_that_started_are_announced_when_another_failed(tmp_path: Path) -> None:
    recorder = Recorder()
    env = make_env(tmp_path, observers=(recorder,))
    env.create_all()
    env.runtime.fail_start.add("shop_db")
    with pytest.raises(LockerError, match="^db: "):
        lifecycle.start(env.ctx, env.ctx.select([]), StartOptions(add_hosts=True))
    started = [event[2] for event in recorder.events if event[0] == "started"]
    assert started == ["web", "cache"]
    assert "web.example.net web.shop" in (tmp_path / "hosts").read_text()


def test_only_containers_locker_started_are_announced(tmp_path: Path) -> None:
    recorder = Recorder()
    env = make_env(tmp_path, observers=(recorder,))
    env.create_all()
    lifecycle.start(env.ctx, ["web"])
    lifecycle.start(env.ctx, ["web", "db"])
    started = [event[2] for event in recorder.events if event[0] == "started"]
    assert started == ["web", "db"]


class RefusingFirewall(LockedFirewall):
    @hookimpl
    def add_forward(self, forwards) -> None:
        raise BackendError("the kernel said no.")


def use_firewall(env: Env, firewall: MemoryFirewall) -> None:
    env.firewall = firewall
    env.ctx.manager = plugins.new_manager(firewall, env.link)


def test_a_start_failure_and_a_rule_failure_are_both_reported(env: Env) -> None:
    use_firewall(env, RefusingFirewall(env.lock))
    env.runtime.fail_start.add("shop_db")
    with pytest.raises(LockerError) as caught:
        lifecycle.start(env.ctx, ["web", "db"])
    assert str(caught.value).splitlines() == [
        "db: Container shop_db failed to start.", "the kernel said no."]
    assert env.lxc("web").state == RUNNING
    assert env.firewall.rules.nat == {SHOP_BRIDGE}


def test_stop_stops_the_containers_when_the_firewall_fails(env: Env) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    env.firewall.fail_next = "the kernel said no."
    with pytest.raises(BackendError, match="the kernel said no."):
        lifecycle.stop(env.ctx, ["web", "db"])
    assert env.lxc("web").state == STOPPED and env.lxc("db").state == STOPPED


class StubbornRuntime(MemoryRuntime):
    """A runtime whose containers do not stop."""

    def stop(self, name: str, timeout: float) -> None:
        raise LockerError(f"{name} did not stop")


def test_cleanup_keeps_the_bridge_while_containers_still_run(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env.ctx.runtime = env.runtime = StubbornRuntime()
    env.create_all()
    lifecycle.start(env.ctx, ["web"])
    with pytest.raises(LockerError, match="web still run"):
        cleanup.cleanup(env.ctx)
    assert "locker_shop" in env.link.bridges
    assert env.firewall.rules.of_project("shop").forwards == frozenset()


class BuggyFirewall(LockedFirewall):
    @hookimpl
    def cleanup(self, project: str) -> None:
        raise TypeError("a bug in the plugin")


def test_cleanup_removes_the_bridge_when_a_plugin_has_a_bug(env: Env) -> None:
    use_firewall(env, BuggyFirewall(env.lock))
    lifecycle.start(env.ctx, ["web"])
    with pytest.raises(LockerError, match="removing rules: unexpected"):
        cleanup.cleanup(env.ctx)
    assert env.link.bridges == {}


# ---------------------------------------------------------------- parallel

class BarrierRuntime(MemoryRuntime):
    """Each start and stop waits until ``parties`` of them are under way at
    once: only a parallel command gets past it."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        import threading
        self.barrier = threading.Barrier(parties, timeout=10)

    def start(self, name: str, timeout: float) -> None:
        self.barrier.wait()
        super().start(name, timeout)

    def stop(self, name: str, timeout: float) -> None:
        self.barrier.wait()
        super().stop(name, timeout)


def test_containers_start_and_stop_in_parallel_and_each_is_reported(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env.runtime = env.ctx.runtime = BarrierRuntime(3)
    env.create_all()
    env.ctx.parallel = 3
    lifecycle.start(env.ctx, env.ctx.select([]))
    assert {c.state for c in env.runtime.containers.values()} == {RUNNING}
    assert sorted(line for line in env.said if line.endswith(")") and "started" in line) == [
        "cache: started (10.1.1.4)", "db: started (10.1.1.3)", "web: started (10.1.1.2)"]
    lifecycle.stop(env.ctx, env.ctx.select([]))
    assert {c.state for c in env.runtime.containers.values()} == {STOPPED}
    assert env.firewall.rules.forwards == frozenset()


def test_parallel_failures_are_all_reported_together(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env.create_all()
    env.ctx.parallel = 3
    env.runtime.fail_start |= {env.ctx.lxc("web"), env.ctx.lxc("cache")}
    with pytest.raises(Failures) as caught:
        lifecycle.start(env.ctx, env.ctx.select([]))
    assert [e.container for e in caught.value.errors] == ["web", "cache"]
    assert env.lxc("db").state == RUNNING


def test_status_marks_hosts_lines_claiming_to_be_lockers_that_it_did_not_write(env: Env) -> None:
    lifecycle.start(env.ctx, ["web", "db"])
    forged = "6.6.6.6\tbank.example\x1b]0;PWNED\x07\t# locker\n"
    env.lxc("web").files["/etc/hosts"] += forged
    result = status(env.ctx)
    web = result.containers[0]
    assert [h.address for h in web.not_lockers] == [IP("6.6.6.6")]
    document = json.dumps(to_json(result))
    assert "\x1b" not in document and "\\u001b" in document
    entries = to_json(result)["containers"][0]["hosts"]
    assert [e["written_by_locker"] for e in entries] == [True, True, False]


def test_a_container_whose_rules_failed_is_not_announced_as_started(env: Env) -> None:
    recorder = Recorder()
    use_firewall(env, RefusingFirewall(env.lock))
    env.ctx.manager.register(recorder)
    with pytest.raises(LockerError, match="the kernel said no."):
        lifecycle.start(env.ctx, ["web"])
    assert env.lxc("web").state == RUNNING
    assert [e for e in recorder.events if e[0] == "started"] == []


def test_cleanup_reports_the_rules_it_removed_to_observers(tmp_path: Path) -> None:
    recorder = Recorder()
    env = make_env(tmp_path, observers=(recorder,))
    env.create_all()
    lifecycle.start(env.ctx, ["web"])
    cleanup.cleanup(env.ctx)
    last_rules = [e for e in recorder.events if e[0] == "rules"][-1]
    assert last_rules[3].forwards == WEB_FORWARDS and last_rules[3].nat == {SHOP_BRIDGE}


def test_isolated_comes_from_the_project_file_else_the_host_default(tmp_path: Path) -> None:
    """The bridge value carries ``isolated``; a change of it replaces the
    project's network rules at the next start."""
    env = make_env(tmp_path)
    env.create_all()
    lifecycle.start(env.ctx, ["web"])
    assert env.firewall.rules.nat == {SHOP_BRIDGE}

    env.ctx.isolated_default = True
    lifecycle.start(env.ctx, ["web"])
    assert env.firewall.rules.nat == {replace(SHOP_BRIDGE, isolated=True)}

    env.ctx.project = replace(env.ctx.project, isolated=False)
    lifecycle.start(env.ctx, ["web"])
    assert env.firewall.rules.nat == {SHOP_BRIDGE}


# -------------------------------------------------------------------- IPv6

def test_start_with_ipv6_gives_both_families(tmp_path: Path) -> None:
    from ipaddress import IPv6Address, IPv6Interface, IPv6Network

    env = make_env(tmp_path, replace(shop_project(tmp_path), ipv6=True))
    env.ctx.ipv6_prefix = IPv6Network("fd00:1234:5678::/48")
    env.create_all()
    lifecycle.start(env.ctx, env.ctx.select([]))

    net6 = IPv6Network("fd00:1234:5678:101::/64")
    bridge = Bridge("shop", "locker_shop", IPv4Network("10.1.1.0/24"), network6=net6)
    assert env.link.bridges["locker_shop"].addresses6 == (IPv6Interface(f"{net6[1]}/64"),)
    assert env.link.ip6_forward
    assert env.firewall.rules.nat == {bridge}
    six = {f for f in env.firewall.rules.forwards if f.family == 6}
    assert six == {Forward("shop", "web", 8080, net6[2], 80),
                   Forward("shop", "db", 5432, net6[3], 5432)}  # 5353 has an IPv4 HOST_IP
    assert Link("shop", "web", net6[2], "db", net6[3]) in env.firewall.rules.links
    web = env.lxc("web")
    assert web.config["address6"] == IPv6Interface(f"{net6[2]}/64")
    assert web.config["gateway6"] == IPv6Address(net6[1])
    assert "fd00:1234:5678:101::3\tdb.example.net db database\t# locker\n" in \
        web.files["/etc/hosts"]
    assert env.lxc("cache").files["/etc/hosts"].startswith(
        "127.0.0.1\tlocalhost\n10.1.1.4\tcache\t# locker: own name\n"
        "fd00:1234:5678:101::4\tcache\t# locker: own name\n")


def test_a_project_without_ipv6_makes_no_host_id(env: Env, tmp_path: Path) -> None:
    lifecycle.start(env.ctx, env.ctx.select([]))
    assert not (tmp_path / "state" / "host-id").exists()
    assert all(f.family == 4 for f in env.firewall.rules.forwards)
    assert not env.link.ip6_forward


def test_status_shows_whether_the_network_rules_isolate_and_what_changed(tmp_path: Path) -> None:
    """``isolated`` is in ``status --json`` and the text; when only it
    changed, the stale network rules say so (not "gone or another subnet")."""
    import io

    from locker.cli import render
    from locker.cli.output import Output

    env = make_env(tmp_path)
    env.create_all()
    lifecycle.start(env.ctx, ["web"])
    env.ctx.isolated_default = True
    result = status(env.ctx)
    document = json.loads(json.dumps(to_json(result)))
    assert document["rules"]["nat"] == [
        {"bridge": "locker_shop", "network": "10.1.1.0/24", "isolated": False,
          "network6": None}]
    nat = [i for i in document["items"] if i["kind"] == "nat"]
    assert nat == [
        {"kind": "nat", "status": "stale", "subject": "shop",
         "value": "network rules locker_shop 10.1.1.0/24",
         "reason": "the project is isolated now (isolated: true)", "fix": "locker start"},
        {"kind": "nat", "status": "missing", "subject": "shop",
         "value": "network rules locker_shop 10.1.1.0/24, isolated", "reason": "",
         "fix": "locker start"}]

    lifecycle.start(env.ctx, ["web"])
    result = status(env.ctx)
    assert to_json(result)["rules"]["nat"] == [
        {"bridge": "locker_shop", "network": "10.1.1.0/24", "isolated": True, "network6": None}]
    stdout = io.StringIO()
    render.status(Output(False, stdout, io.StringIO()), result)
    assert "  in place nat      shop: network rules locker_shop 10.1.1.0/24, isolated" \
        in stdout.getvalue().splitlines()


# ------------------------------------- container files and the host lock (issue 13)

class FilesOutsideTheLock(MemoryRuntime):
    """A container's files may be slow or hostile, and lxc-info may hang:
    no file is read or written and no state asked while the host lock is
    held."""

    def __init__(self, lock: Lock) -> None:
        super().__init__()
        self.lock = lock
        self.touched: list[tuple[str, str]] = []

    def read_file(self, name: str, path: str) -> str | None:
        assert not self.lock.held, f"{name}:{path} read under the host lock"
        self.touched.append((name, path))
        return super().read_file(name, path)

    def write_file(self, name: str, path: str, text: str) -> None:
        assert not self.lock.held, f"{name}:{path} written under the host lock"
        self.touched.append((name, path))
        super().write_file(name, path, text)

    def state(self, name: str) -> str:  # lxc-info may hang (issue 15 item 1)
        assert not self.lock.held, f"the state of {name} asked under the host lock"
        return super().state(name)

    def survey(self, names, addresses: bool = False):
        assert not self.lock.held, "the containers' states asked under the host lock"
        return super().survey(names, addresses)


def test_no_container_file_nor_state_is_read_under_the_host_lock(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    runtime = FilesOutsideTheLock(env.lock)
    env.ctx.runtime = env.runtime = runtime
    env.create_all()
    lifecycle.start(env.ctx, ["web", "db", "cache"])
    lifecycle.reconcile(env.ctx, "links", None)
    lifecycle.reconcile(env.ctx, "links", None, keep=False)
    lifecycle.reconcile(env.ctx, "ports", None)
    lifecycle.stop(env.ctx, ["db"])
    cleanup.cleanup(env.ctx)
    status(env.ctx)
    assert ("shop_web", "/etc/hosts") in runtime.touched  # the check saw the files


class RefusingRuntime(MemoryRuntime):
    """Once ``refusing``, one container's /etc/hosts is something Locker
    refuses (the container made it a FIFO)."""

    refusing = False

    def read_file(self, name: str, path: str) -> str | None:
        if self.refusing and name == "shop_db" and path == "/etc/hosts":
            from locker.runtime.rootfs import ContainerFileRefused
            raise ContainerFileRefused(name, path, "it is a FIFO, not a regular file")
        return super().read_file(name, path)


def test_status_with_one_refused_container_file_shows_the_others(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    runtime = RefusingRuntime()
    env.ctx.runtime = env.runtime = runtime
    env.create_all()
    lifecycle.start(env.ctx, ["web", "db"])
    runtime.refusing = True
    result = status(env.ctx)
    by_name = {c.name: c for c in result.containers}
    assert "shop_db" in by_name["db"].problem and "FIFO" in by_name["db"].problem
    assert by_name["db"].state == RUNNING and by_name["db"].addresses
    assert by_name["web"].problem is None and by_name["web"].hosts
    assert to_json(result)["containers"][1]["problem"] == by_name["db"].problem


# ----------------------------------------- unknown is not stopped (issue 15 item 3)

def test_a_container_of_unknown_state_keeps_its_rules_and_is_reported(env: Env) -> None:
    """lxc-info hung for db: ports, links and start leave its forwards and
    links as they are (it may well run), start says why, status shows it."""
    from locker.runtime import UNKNOWN, UnknownState

    lifecycle.start(env.ctx, ["web", "db", "cache"])
    forwards, links = set(env.firewall.rules.forwards), set(env.firewall.rules.links)
    assert any(f.container == "db" for f in forwards)
    assert any("db" in (k.container, k.peer) for k in links)
    env.lxc("db").state = UnknownState("lxc-info -n shop_db did not answer in 10 s")

    lifecycle.reconcile(env.ctx, "ports", None)
    lifecycle.reconcile(env.ctx, "links", None)
    with pytest.raises(ContainerError, match=r"db: its state cannot be read \(lxc-info -n "
                                             r"shop_db did not answer in 10 s\), so it is "
                                             r"left as it is, its rules too"):
        lifecycle.start(env.ctx, ["web", "db", "cache"])
    assert set(env.firewall.rules.forwards) == forwards
    assert set(env.firewall.rules.links) == links
    db = {c.name: c for c in status(env.ctx).containers}["db"]
    assert db.state == UNKNOWN


# ------------------------------------------------------------------ ranges

def ranged_project(path: Path, name: str, *ports: PortSpec) -> Project:
    return Project(name, path / name / "locker.yaml", (ContainerSpec("web", BUSYBOX, ports=ports),))


def test_a_range_is_applied_and_listed_back_as_a_range(tmp_path: Path) -> None:
    env = make_env(tmp_path, ranged_project(tmp_path, "shop", PortSpec(8000, 9000, count=11),
                                            PortSpec(53, 53, "udp", IP("192.0.2.10"), 2)))
    env.create_all()
    lifecycle.start(env.ctx, ["web"])
    wide = Forward("shop", "web", 8000, IP(WEB), 9000, count=11)
    assert wide in env.firewall.rules.forwards
    document = json.loads(json.dumps(to_json(status(env.ctx))))
    assert {"kind": "forward", "status": "in place", "subject": "web",
            "value": "8000-8010/tcp -> 10.1.1.2:9000-9010", "reason": "",
            "fix": ""} in document["items"]
    assert {"container": "web", "host_ip": None, "host_port": 8000, "protocol": "tcp",
            "container_ip": WEB, "container_port": 9000, "count": 11,
            "stale": False} in document["rules"]["forwards"]
    # a narrower range in the kernel is not the range asked for: the repair replaces it
    narrow = replace(wide, count=10)
    env.firewall.rules = replace(env.firewall.rules,
                                 forwards=env.firewall.rules.forwards - {wide} | {narrow})
    lifecycle.reconcile(env.ctx, "ports", None)
    assert wide in env.firewall.rules.forwards and narrow not in env.firewall.rules.forwards


def test_a_range_overlapping_another_projects_forward_is_refused(tmp_path: Path) -> None:
    shop = make_env(tmp_path, ranged_project(tmp_path, "shop", PortSpec(8000, 9000, count=11)))
    shop.create_all()
    lifecycle.start(shop.ctx, ["web"])
    blog = make_env(tmp_path, ranged_project(tmp_path, "blog", PortSpec(7990, 80, count=11)),
                    share=shop)
    blog.create_all()
    with pytest.raises(ConfigError) as caught:
        lifecycle.start(blog.ctx, ["web"])
    assert caught.value.exit_status == 2
    assert caught.value.problems == [
        f'{tmp_path}/blog/locker.yaml: web: port "7990-8000/tcp": project shop '
        f"({tmp_path}/shop/locker.yaml) forwards 8000-8010/tcp to its container web already; "
        "choose other host ports, or stop that project first."]
    assert shop.firewall.rules.of_project("blog").forwards == frozenset()
