"""Link backends in real processes: a Locker killed between creating a
bridge and marking it leaves a bridge that the next run adopts, and two
projects started at the same moment never get the same subnet. For every
shipped link backend, loaded through its entry point as the core loads it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from locker.errors import BackendError
from locker.model import Bridge
from locker.names import bridge_alias, bridge_name
from locker.plugins import LINK, installed, load, new_manager
from locker.testing.link_suite import alias_of, ipv4_of, link_of
from locker.testing.netns import NetNS

BACKENDS = ("netlink", "ipr2")


def backend_hook(name: str):
    if name not in installed(LINK):
        pytest.skip(f"the {name} link backend is not installed (scripts/setup installs it)")
    return new_manager(load(LINK, name)).hook


def python_in(netns: NetNS, code: str, *args: str, **kwargs) -> subprocess.Popen:
    """A Python process running ``code`` inside the namespace."""
    return subprocess.Popen(["ip", "netns", "exec", netns.name, sys.executable, "-c",
                             textwrap.dedent(code), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


# ------------------------------------------------------ killed mid-creation

ENSURE = """
import sys
from ipaddress import IPv4Network
from locker.model import Bridge
from locker.plugins import LINK, load, new_manager
hook = new_manager(load(LINK, sys.argv[1])).hook
bridge = Bridge("alpha", "locker_alpha", IPv4Network("10.1.1.0/24"))
print(hook.ensure_bridge(bridge=bridge, adopt=False))
"""


@pytest.mark.privileged
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_bridge_left_by_a_killed_locker_is_adopted(netns: NetNS, backend: str) -> None:
    hook = backend_hook(backend)
    name = bridge_name("alpha")
    proc = python_in(netns, ENSURE, backend, env={"LOCKER_FAULT": "bridge-created",
                                                  "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)
    assert link_of(netns, name) is not None, "the bridge was created"
    assert alias_of(netns, name) is None, "and killed before its mark was set"
    assert ipv4_of(netns, name) == []

    bridge = Bridge("alpha", name, IPv4Network("10.1.1.0/24"))
    with pytest.raises(BackendError, match="it has no alias"):
        hook.ensure_bridge(bridge=bridge, adopt=False)
    state = hook.ensure_bridge(bridge=bridge, adopt=True)
    assert state.owned and state.up and state.network == bridge.network
    assert alias_of(netns, name) == bridge_alias("alpha")


@pytest.mark.privileged
@pytest.mark.parametrize("backend", BACKENDS)
def test_without_the_fault_the_process_makes_the_bridge(netns: NetNS, backend: str) -> None:
    backend_hook(backend)
    proc = python_in(netns, ENSURE, backend)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert alias_of(netns, bridge_name("alpha")) == bridge_alias("alpha")


# ----------------------------------------------------- two starts at once

# Waits for "go" on stdin, then does what `locker start` does under the host
# lock: allocate, then (after a pause that makes the race window wide)
# ensure the bridge. Prints the subnet it got.
START = """
import json, sys, time
from contextlib import nullcontext
from pathlib import Path
from locker.hostlock import host_lock
from locker.model import Bridge
from locker.names import bridge_name
from locker.plugins import LINK, load, new_manager
from locker.subnets import DEFAULT_POOL
backend, project, lock = sys.argv[1:4]
hook = new_manager(load(LINK, backend)).hook
print("ready", flush=True)
sys.stdin.readline()
with host_lock(Path(lock)) if lock != "-" else nullcontext():
    name = bridge_name(project)
    network = hook.allocate_subnet(bridge=name, pool=DEFAULT_POOL, reserved=[])
    time.sleep(0.5)
    state = hook.ensure_bridge(bridge=Bridge(project, name, network), adopt=False)
print(json.dumps({"allocated": str(network), "bridge": str(state.network)}))
"""


def start_both(netns: NetNS, backends: tuple[str, str], lock: str) -> list[dict]:
    procs = [python_in(netns, START, backend, project, lock)
             for backend, project in zip(backends, ("alpha", "beta"))]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:  # as close to the same moment as two writes get
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.privileged
@pytest.mark.parametrize("backends", [("netlink", "netlink"), ("ipr2", "ipr2"),
                                      ("netlink", "ipr2")], ids=lambda b: "+".join(b))
def test_two_starts_at_the_same_moment_get_different_subnets(
        netns: NetNS, tmp_path: Path, backends: tuple[str, str]) -> None:
    for backend in set(backends):
        backend_hook(backend)
    alpha, beta = start_both(netns, backends, str(tmp_path / "lock"))
    assert alpha["allocated"] == alpha["bridge"] and beta["allocated"] == beta["bridge"]
    assert {alpha["bridge"], beta["bridge"]} == {"10.1.1.0/24", "10.1.2.0/24"}
    assert ipv4_of(netns, bridge_name("alpha")) == [alpha["bridge"].replace(".0/", ".1/")]
    assert ipv4_of(netns, bridge_name("beta")) == [beta["bridge"].replace(".0/", ".1/")]


@pytest.mark.privileged
def test_without_the_lock_the_race_is_real(netns: NetNS) -> None:
    """The negative control: the same two processes without the host lock
    both choose the same subnet, so the test above can fail."""
    backend_hook("netlink")
    alpha, beta = start_both(netns, ("netlink", "netlink"), "-")
    assert alpha["allocated"] == beta["allocated"] == "10.1.1.0/24"
