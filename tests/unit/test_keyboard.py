"""Issue 12, "At the keyboard": names, hostnames, the words of every
command, and the compose-style commands, over the in-memory backends."""

from __future__ import annotations

from pathlib import Path

from locker.ops import lifecycle
from locker.ops.lifecycle import SELF_MARK
from test_cli import fake_backends  # noqa: F401  (fixtures)
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


@pytest.mark.parametrize("command", ["start", "stop", "up", "down", "status", "rm", "cleanup",
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
