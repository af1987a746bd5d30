"""Run LXC commands inside a test's network namespace, with cgroups.

``ip netns exec`` gives the command a /sys of the namespace (LXC needs it
to find the namespace's bridge) by mounting a fresh sysfs over /sys in a
private mount namespace, which also hides the cgroup hierarchies mounted
under /sys/fs/cgroup. LXC then starts containers without any cgroup: freeze
fails and any ``lxc.cgroup`` setting makes the start fail. This wrapper
mounts the host's cgroup hierarchies again (same types and options, read
from PID 1's mount table; the mounts stay inside the private mount
namespace) and then runs the command::

    LxcRuntime(lxcpath, command_prefix=lxc_command_prefix(ns.name))
    subprocess.run([*lxc_command_prefix(ns.name), "lxc-info", ...])
"""

from __future__ import annotations

import os
import subprocess
import sys

CGROUP_ROOT = "/sys/fs/cgroup"


def lxc_command_prefix(netns_name: str) -> tuple[str, ...]:
    """The argv prefix that runs a command in ``netns_name`` with the
    host's cgroup hierarchies visible."""
    return ("ip", "netns", "exec", netns_name, sys.executable, "-m", __name__)


def host_cgroup_mounts(mountinfo: str = "/proc/1/mountinfo") -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) of the cgroup hierarchies
    below /sys/fs/cgroup in the host's mount namespace."""
    found = []
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = left.split()[4]
            fstype, _source, options = right.split()[:3]
            if fstype in ("cgroup", "cgroup2") and point.startswith(CGROUP_ROOT + "/"):
                found.append((point, fstype, options))
            elif fstype == "cgroup2" and point == CGROUP_ROOT:
                found.append((point, fstype, options))
    return found


def _remount_cgroups() -> None:
    if os.listdir(CGROUP_ROOT):  # already visible: nothing to do
        return
    mounts = host_cgroup_mounts()
    if mounts and mounts[0][0] != CGROUP_ROOT:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "cgroup", CGROUP_ROOT],
                       check=True)
    for point, fstype, options in mounts:
        os.makedirs(point, exist_ok=True)
        subprocess.run(["mount", "-t", fstype, "-o", options, fstype, point], check=True)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -m locker.testing.lxchost COMMAND [ARG ...]")
    _remount_cgroups()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
