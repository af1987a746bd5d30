"""Issue 12, "At the keyboard", on real containers: every item a new user
saw, once per firewall backend. Containers are destroyed by the world's
finalizer, also when a test fails."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from world import LOCKER, World, wait_for
from locker.testing.lxchost import lxc_command_prefix

pytestmark = [pytest.mark.e2e, pytest.mark.privileged]

PROJECT = """\
name: shop
containers:
  web:
    template: {name: busybox}
    ports: ["8080:80"]
    links: ["cache"]
  cache:
    template: {name: busybox}
"""
INTERRUPTED = ("no change was left half made, and the ones made are listed above")


def env_of(world: World) -> dict[str, str]:
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LOCKER_RUN_DIR": str(world.run_dir), "LOCKER_CONFIG": str(world.host_config),
            "LOCKER_STATE_DIR": str(world.state_dir), "NO_COLOR": "1", "LANG": "C.UTF-8"}


def spawn(world: World, directory: Path, *argv: str) -> subprocess.Popen:
    options = ["-P", str(world.lxcpath), "--backend", world.backend,
               "--link-backend", world.link]
    return subprocess.Popen([*lxc_command_prefix(world.host.name), str(LOCKER), *options,
                             *argv], cwd=directory, env=env_of(world), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def lxc_state(world: World, name: str) -> str:
    return world.lxc("lxc-info", "-n", name, "-sH").stdout.strip()


@pytest.fixture(scope="module")
def shop(world: World) -> Path:
    """The project ``shop`` (its name: key) in the directory ``my-app``."""
    directory = world.project("my_app", PROJECT)
    world.locker(directory, "create")
    assert world.container_names() == ["shop_cache", "shop_web"]
    return directory


def test_the_name_key_names_the_project_and_my_app_is_a_name(world: World) -> None:
    directory = world.project("my-app", "containers:\n  web:\n    template: {name: busybox}\n")
    done = world.locker(directory, "validate")
    assert "project 'my-app'" in done.stdout
    bad = world.project("my_shop", "containers:\n  web:\n    template: {name: busybox}\n")
    done = world.locker(bad, "validate", check=False)
    assert done.returncode == 2
    assert "name the project with a top-level name: my-shop in the file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_container_without_fqdn_is_named_after_itself(world: World, shop: Path) -> None:
    world.locker(shop, "start")
    try:
        assert world.attach("shop_cache", "/bin/hostname").stdout.strip() == "cache"
        assert world.attach("shop_cache", "/bin/cat", "/etc/hostname").stdout == "cache\n"
        hosts = world.attach("shop_cache", "/bin/cat", "/etc/hosts").stdout
        ip = world.lxc("lxc-info", "-n", "shop_cache", "-iH").stdout.split()[0]
        assert f"{ip}\tcache\t" in hosts
        # and web, linked to it, reaches it by that name
        done = world.attach("shop_web", "/bin/busybox", "ping", "-c1", "-W2", "cache")
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        world.locker(shop, "stop")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_is_one_line_and_the_next_start_finishes(
        world: World, shop: Path, signum: int) -> None:
    name = signal.Signals(signum).name
    for delay in (0.3, 0.8, 1.5, 2.5):
        child = spawn(world, shop, "start")
        time.sleep(delay)
        child.send_signal(signum)
        out, err = child.communicate(timeout=120)
        if child.returncode == 0:
            assert "Traceback" not in err
        else:
            assert child.returncode == 128 + signum, err
            lines = err.splitlines()
            assert lines[-1] == f"locker: error: interrupted by {name}; {INTERRUPTED}", err
        assert "Traceback" not in err and "Exception ignored" not in err, err
        for container in ("web", "cache"):
            if lxc_state(world, f"shop_{container}") == "RUNNING":
                assert f"{container}: started" in err or child.returncode == 0, (delay, err)
        world.locker(shop, "start")
        done = world.locker(shop, "status", "--check", check=False)
        assert done.returncode == 0, (delay, err, done.stdout, done.stderr)
        world.locker(shop, "stop")


def test_start_starts_what_exists_and_names_what_does_not(world: World) -> None:
    directory = world.project("partial", """\
containers:
  web:
    template: {name: busybox}
  extra:
    template: {name: busybox}
  copy:
    clone: web
""")
    world.locker(directory, "create", "web")
    try:
        done = world.locker(directory, "start", check=False)
        assert done.returncode == 1
        lines = done.stderr.splitlines()
        assert lines[:2] == ["extra: not created", "copy: not created"]
        assert any(line.startswith("web: started (") for line in lines)
        assert lines[-1].startswith("locker: error: not created: extra, copy;")
        assert lxc_state(world, "partial_web") == "RUNNING"
        done = world.locker(directory, "create", "copy", check=False)
        assert done.returncode == 1
        assert done.stderr.strip() == (
            "locker: error: copy: cannot clone partial_web while it runs (lxc-copy copies a "
            "stopped container); run `locker stop web` first.")
    finally:
        world.locker(directory, "down", "--rm", check=False)
    assert not [n for n in world.container_names() if n.startswith("partial_")]


def test_the_same_situation_the_same_words(world: World, shop: Path) -> None:
    world.locker(shop, "start")
    try:
        assert world.locker(shop, "freeze", "web").stderr.splitlines() == ["web: frozen"]
        assert world.locker(shop, "freeze", "web").stderr.splitlines() == [
            "web: already frozen", "shop: nothing to change"]
        world.locker(shop, "unfreeze", "web")
        assert world.locker(shop, "start").stderr.splitlines()[:2] == [
            "web: already running", "cache: already running"]
        done = world.locker(shop, "rmports")
        assert "web: removed forward 8080/tcp -> " in done.stderr
    finally:
        world.locker(shop, "stop")
    assert world.locker(shop, "stop", "web").stderr.splitlines() == [
        "web: already stopped", "shop: nothing to change"]
    gone = world.project("gone", PROJECT.replace("name: shop\n", ""))
    for command in ("stop", "rm", "freeze", "unfreeze"):
        done = world.locker(gone, command, "web", check=False)
        assert (done.returncode, done.stderr.splitlines()[0]) == (1, "web: not created"), \
            (command, done.stderr)


def test_an_lxc_start_failure_is_one_line_with_the_log(world: World) -> None:
    directory = world.project("broken", "containers:\n  web:\n    template: {name: busybox}\n")
    world.locker(directory, "create")
    config = world.lxcpath / "broken_web" / "config"
    config.write_text(config.read_text() + "lxc.hook.pre-start = /bin/false\n")
    try:
        done = world.locker(directory, "start", check=False)
        assert done.returncode == 1
        errors = [line for line in done.stderr.splitlines() if line.startswith("locker: error")]
        assert len(errors) == 1, done.stderr
        log = world.lxcpath / "broken_web" / "locker-start.log"
        assert f"(LXC's log: {log}; -v shows all LXC printed)" in errors[0]
        assert "foreground mode" not in done.stderr
        verbose = world.locker(directory, "start", "-v", check=False)
        assert "foreground mode" in verbose.stderr
    finally:
        world.locker(directory, "down", "--rm", check=False)


def test_up_exec_logs_rm_force_and_down(world: World) -> None:
    directory = world.project("compose", "containers:\n  web:\n    template: {name: busybox}\n")
    try:
        done = world.locker(directory, "up")
        assert "web: created (compose_web)" in done.stderr
        assert "web: started (" in done.stderr
        done = world.locker(directory, "exec", "web", "--", "/bin/hostname")
        assert done.stdout.strip() == "web"
        done = world.locker(directory, "exec", "web", "--", "/bin/sh", "-c", "exit 7",
                            check=False)
        assert done.returncode == 7
        assert world.locker(directory, "attach", "web").returncode == 0  # stdin is empty
        assert world.locker(directory, "logs", "web").returncode == 0
        done = world.locker(directory, "rm", "web", check=False)
        assert done.returncode == 1 and "rm --force web" in done.stderr
        done = world.locker(directory, "rm", "--force", "web")
        assert done.stderr.splitlines()[0] == "web: stopped"
        assert "web: removed (compose_web)" in done.stderr
        world.locker(directory, "up")
        done = world.locker(directory, "down", "--rm")
        assert "web: removed (compose_web)" in done.stderr
    finally:
        world.locker(directory, "down", "--rm", check=False)
    assert not [n for n in world.container_names() if n.startswith("compose_")]


def test_add_hosts_where_etc_hosts_is_a_bind_mount(world: World, shop: Path) -> None:
    # `ip netns exec` binds /etc/netns/NS/hosts over /etc/hosts: the
    # machine's own /etc/hosts is never written
    private = Path("/etc/netns") / world.host.name
    private.mkdir(parents=True)
    try:
        (private / "hosts").write_text("127.0.0.1\tlocalhost\n192.0.2.77\tprinter\n")
        seen = world.in_host(["cat", "/etc/hosts"]).stdout
        assert "printer" in seen, "the bind mount is not in effect: not running the test"
        done = world.locker(shop, "start", "--add-hosts", check=False)
        assert done.returncode == 0, done.stderr
        text = (private / "hosts").read_text()
        assert text.startswith("127.0.0.1\tlocalhost\n192.0.2.77\tprinter\n")
        assert "web.shop\t# locker:shop" in text and "cache.shop\t# locker:shop" in text
        world.locker(shop, "cleanup")
        assert (private / "hosts").read_text() == "127.0.0.1\tlocalhost\n192.0.2.77\tprinter\n"
    finally:
        world.locker(shop, "cleanup", check=False)
        for leftover in private.iterdir():
            leftover.unlink()
        private.rmdir()


def test_without_root(world: World) -> None:
    import shutil
    import tempfile

    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    readable = Path(tempfile.mkdtemp(prefix="locker-e2e-public-"))  # pytest's are root's only
    try:
        os.chmod(readable, 0o755)
        # named in the file: mkdtemp's random suffix may hold an "_"
        (readable / "locker.yaml").write_text(
            "name: public\ncontainers:\n  web:\n    template: {name: busybox}\n")
        (readable / "host.yaml").write_text("# empty\n")
        env = {**env_of(world), "LOCKER_CONFIG": str(readable / "host.yaml")}

        def as_nobody(*argv: str) -> subprocess.CompletedProcess:
            return world.in_host([*nobody, str(LOCKER), *argv], cwd=readable, env=env)

        for argv in (("start",), ("status", "--check"), ("--backend", "iptables", "status",
                                                       "--check"), ("down",),
                     ("exec", "web", "--", "true")):
            done = as_nobody(*argv)
            assert done.returncode == 1, done.stderr
            assert "which needs root: run locker as root" in done.stderr
            assert len(done.stderr.splitlines()) == 1 and "bug" not in done.stderr
        done = as_nobody("backends")
        assert done.returncode == 0 and "needs root" in done.stdout, done.stderr
        assert "can work here" not in done.stdout
        assert as_nobody("validate").returncode == 0
        assert as_nobody("--help").returncode == 0
        done = as_nobody("ls")
        assert "bug" not in done.stderr and "Traceback" not in done.stderr
        done = as_nobody("status")  # what a user may read
        assert done.returncode == 0, done.stderr
        assert "not root" in done.stdout and "web" in done.stdout
        assert "can only be read as root" in done.stdout or "recorded network: none" in done.stdout
    finally:
        shutil.rmtree(readable)


def test_an_interrupted_create_leaves_no_half_container(world: World) -> None:
    directory = world.project("fresh", "containers:\n  web:\n    template: {name: busybox}\n"
                                       "  db:\n    template: {name: busybox}\n")
    try:
        for delay in (0.2, 0.6, 1.2):
            child = spawn(world, directory, "create")
            time.sleep(delay)
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=120)
            assert "Traceback" not in err and "Exception ignored" not in err, err
            assert child.returncode in (0, 130), err
            for name in ("web", "db"):
                exists = (world.lxcpath / f"fresh_{name}").exists()
                # a container is there whole (and said so) or not at all
                assert exists == (f"{name}: created" in err or child.returncode == 0
                                  or f"{name}: already created" in err), (delay, err)
            done = world.locker(directory, "create")
            assert "Traceback" not in done.stderr
            world.locker(directory, "up")
            world.locker(directory, "down", "--rm")
    finally:
        world.locker(directory, "down", "--rm", check=False)
