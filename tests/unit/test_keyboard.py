"""Issue 12, "At the keyboard": names, hostnames, the words of every
command, and the compose-style commands, over the in-memory backends."""

from __future__ import annotations

from pathlib import Path

from locker.ops import lifecycle
from locker.ops.lifecycle import SELF_MARK
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
