"""The namespace world the end-to-end tests run in.

``World`` owns two network namespaces joined by a veth pair ``uplink``:

- *host*: where every ``locker`` and ``lxc-*`` command runs, so LXC's veths,
  Locker's bridges and rules land there. Uplink addresses ``HOST_IP`` and
  ``HOST_IP2``, default route via the outside.
- *outside*: an outside client and "the internet", ``OUTSIDE_IP``.

plus a temporary lxcpath, run directory (``LOCKER_RUN_DIR``), host state
directory (``LOCKER_STATE_DIR``), an empty host configuration file
(``LOCKER_CONFIG``) and project directories.
``World.close`` kills and destroys every container in the lxcpath, ends the
servers it started and deletes both namespaces; it never raises.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from locker.testing.lxchost import lxc_command_prefix
from locker.testing.netns import NetNS

LOCKER = Path(sys.executable).with_name("locker")
BACKENDS = ("nftables", "iptables")
LINK_BACKENDS = ("netlink", "ipr2")
#: Every firewall and link backend pair: the worlds of the main scenario.
#: The other modules run once per firewall backend with the built-in link
#: backend; the link backends' differences are the link suite's business.
ALL_PAIRS = [(firewall, link) for link in LINK_BACKENDS for firewall in BACKENDS]
FIREWALL_PAIRS = [(firewall, "netlink") for firewall in BACKENDS]
#: The example backend (examples/locker-nftcli) runs these tests of the main
#: scenario in the default run too, besides the shipped pairs (the whole
#: suite runs against it with ``--locker-firewall nftcli``).
EXAMPLE_PAIR = ("nftcli", "netlink")
EXAMPLE_TESTS = (
    "test_a_forward_reaches_the_server_in_the_container",
    "test_a_forward_with_host_ip_answers_on_that_address_only",
    "test_containers_reach_the_outside_masqueraded_behind_the_host",
    "test_a_linked_alias_resolves_and_answers_inside_the_container",
    "test_stop_removes_the_containers_forwards_and_links",
)
#: Firewall backends whose rules live in the legacy iptables store; every
#: other one (the shipped nftables backend, the example) keeps them in
#: nftables.
IPTABLES_LEGACY_BACKENDS = ("iptables",)
HOST_IP = "192.0.2.1"
HOST_IP2 = "192.0.2.10"
OUTSIDE_IP = "192.0.2.2"
COMMAND_TIMEOUT = 120.0
BOOT_TIMEOUT = 20.0
_BRIDGE_NF_CALL_IPTABLES = "/proc/sys/net/bridge/bridge-nf-call-iptables"

T = TypeVar("T")

# Answers every GET with the client's address: what the outside sees as the
# source of a connection. Prints "ready" once it listens.
_PEER_ECHO_SERVER = """
import http.server, sys
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Echo)
print("ready", flush=True)
server.serve_forever()
"""

_FETCH = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as answer:
    sys.stdout.write(answer.read().decode())
"""


def missing_requirements() -> str | None:
    """Why the end-to-end tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (creates network namespaces and LXC containers)"
    if not LOCKER.exists():
        return f"needs the installed locker command at {LOCKER} (pip install -e .)"
    for tool in ("ip", "lxc-create", "lxc-attach", "busybox"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command (packages iproute2, lxc, busybox-static)"
    if not Path("/usr/share/lxc/templates/lxc-busybox").exists():
        return "needs LXC's busybox template (package lxc-templates)"
    return None


def wait_for(check: Callable[[], T | None], what: str, timeout: float = BOOT_TIMEOUT,
             interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail after
    ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class World:
    """See the module docstring. ``backend`` (firewall) and ``link`` (link
    backend) are passed to every locker call."""

    def __init__(self, root: Path, backend: str, link: str = "netlink") -> None:
        self.backend = backend
        self.link = link
        self.root = root
        self.lxcpath = root / "lxc"
        self.run_dir = root / "run"
        self.state_dir = root / "state"
        self.host_config = root / "host.yaml"
        self._servers: list[subprocess.Popen] = []
        self._namespaces: list[NetNS] = []
        for d in (self.lxcpath, self.run_dir):
            d.mkdir(parents=True)
        # The DNS forwarder (dnsmasq, as nobody) opens its files under the run
        # directory by path, as it would under /run: let it pass through.
        for d in (self.run_dir, *self.run_dir.parents):
            d.chmod(d.stat().st_mode | 0o001)
        self.host_config.write_text("# empty: no host settings\n")
        try:
            self.host = self._namespace("e2ehost")
            self.outside = self._namespace("e2eout")
            self._wire()
        except BaseException:
            self.close()
            raise

    def _namespace(self, prefix: str) -> NetNS:
        ns = NetNS(prefix)
        self._namespaces.append(ns)
        return ns

    def _wire(self) -> None:
        self.host.run(["ip", "link", "add", "uplink", "type", "veth",
                       "peer", "name", "uplink", "netns", self.outside.name])
        self.host.run(["ip", "addr", "add", f"{HOST_IP}/24", "dev", "uplink"])
        self.host.run(["ip", "addr", "add", f"{HOST_IP2}/24", "dev", "uplink"])
        self.outside.run(["ip", "addr", "add", f"{OUTSIDE_IP}/24", "dev", "uplink"])
        self.host.run(["ip", "link", "set", "uplink", "up"])
        self.outside.run(["ip", "link", "set", "uplink", "up"])
        self.host.run(["ip", "route", "add", "default", "via", OUTSIDE_IP])

    def project(self, name: str, text: str) -> Path:
        """A project directory ``name`` (so also the project's name) holding
        ``text`` as its locker.yaml."""
        directory = self.root / name
        directory.mkdir(exist_ok=True)
        (directory / "locker.yaml").write_text(text)
        return directory

    # -- running things ---------------------------------------------------

    def in_host(self, argv: Sequence[str], check: bool = False,
                **kwargs) -> subprocess.CompletedProcess:
        """Run a command in the host namespace with the machine's cgroup
        hierarchies visible (as LXC needs them), like on a real host."""
        kwargs.setdefault("timeout", COMMAND_TIMEOUT)
        return subprocess.run([*lxc_command_prefix(self.host.name), *argv],
                              capture_output=True, text=True, check=check,
                              stdin=subprocess.DEVNULL, **kwargs)

    def _locker_argv(self, argv: Sequence[str], backend: bool, env: dict[str, str] | None
                     ) -> tuple[list[str], dict[str, str]]:
        environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                       "LOCKER_RUN_DIR": str(self.run_dir),
                       "LOCKER_CONFIG": str(self.host_config),
                       "LOCKER_STATE_DIR": str(self.state_dir),
                       "NO_COLOR": "1", "LANG": "C.UTF-8", **(env or {})}
        options = ["-P", str(self.lxcpath),
                   *(["--backend", self.backend, "--link-backend", self.link] if backend else [])]
        return [str(LOCKER), *options, *argv], environment

    def locker(self, project_dir: Path, *argv: str, backend: bool = True,
               check: bool = True, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
        """``locker -P LXCPATH --backend B --link-backend L ARGV`` in the host
        namespace, run from ``project_dir``; with ``check``, a non-zero exit
        fails the test showing locker's output. ``env`` adds environment
        variables."""
        command, environment = self._locker_argv(argv, backend, env)
        done = self.in_host(command, cwd=project_dir, env=environment)
        if check and done.returncode != 0:
            raise AssertionError(f"locker {' '.join(argv)} exited {done.returncode}\n"
                                 f"stdout: {done.stdout}\nstderr: {done.stderr}")
        return done

    def locker_started(self, project_dir: Path, *argv: str,
                       env: dict[str, str] | None = None) -> subprocess.Popen:
        """``locker ARGV`` as above, started and not waited for: for races."""
        command, environment = self._locker_argv(argv, True, env)
        return subprocess.Popen([*lxc_command_prefix(self.host.name), *command],
                                cwd=project_dir, env=environment, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def status(self, project_dir: Path) -> dict:
        return json.loads(self.locker(project_dir, "status", "--json").stdout)

    def lxc(self, command: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.in_host([command, "-P", str(self.lxcpath), *argv], check=check)

    def attach(self, container: str, *command: str, timeout: float = 30.0
               ) -> subprocess.CompletedProcess:
        """Run ``command`` inside the running LXC container ``container``."""
        return self.in_host(["lxc-attach", "-P", str(self.lxcpath), "-n", container,
                             "--", *command], timeout=timeout)

    def rootfs(self, container: str) -> Path:
        return self.lxcpath / container / "rootfs"

    def container_names(self) -> list[str]:
        return sorted(p.parent.name for p in self.lxcpath.glob("*/config"))

    # -- servers and clients ------------------------------------------------

    def serve_http(self, container: str, text: str) -> None:
        """Run busybox httpd on port 80 in ``container``, serving ``text``
        as /index.html, and wait until it answers inside the container."""
        www = self.rootfs(container) / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text(text)
        if self.fetch_in(container, "http://127.0.0.1/") != text:
            done = self.attach(container, "/bin/busybox", "httpd", "-p", "80", "-h", "/www")
            assert done.returncode == 0, f"httpd in {container}: {done.stderr}"
        wait_for(lambda: self.fetch_in(container, "http://127.0.0.1/") == text,
                 f"httpd in {container}")

    def fetch_in(self, container: str, url: str, timeout: int = 3) -> str | None:
        """``wget`` from inside ``container``: the body, or None on failure.
        (Debian's static busybox crashes on ``wget -T``, so ``timeout``
        bounds it instead.)"""
        done = self.attach(container, "/bin/busybox", "timeout", str(timeout),
                           "/bin/busybox", "wget", "-qO-", url, timeout=timeout + 30)
        return done.stdout if done.returncode == 0 else None

    def fetch_outside(self, url: str, timeout: int = 3) -> str | None:
        """An HTTP GET from the outside namespace: the body, or None on failure."""
        done = self.outside.run([sys.executable, "-c", _FETCH, url, str(timeout)],
                                check=False, timeout=timeout + 10)
        return done.stdout if done.returncode == 0 else None

    def peer_echo_server(self, port: int) -> str:
        """Start an HTTP server in the outside namespace that answers with
        the address the request came from; returns its URL."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.outside.name, sys.executable,
                                 "-c", _PEER_ECHO_SERVER, OUTSIDE_IP, str(port)],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self._servers.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", "the peer echo server did not start"
        return f"http://{OUTSIDE_IP}:{port}/"

    # -- the kernel's state ---------------------------------------------------

    @property
    def rules_via_nft(self) -> bool:
        """Whether the firewall backend keeps its rules in nftables."""
        return self.backend not in IPTABLES_LEGACY_BACKENDS

    def wipe_rules(self) -> None:
        """What a firewall reload that flushes everything does (Debian's
        nftables.service flushes the ruleset)."""
        if self.rules_via_nft:
            self.host.run(["nft", "flush", "ruleset"])
            return
        for table in ("filter", "nat"):
            self.host.run(["iptables-legacy", "-t", table, "-F"])
            self.host.run(["iptables-legacy", "-t", table, "-X"])

    def ruleset_dump(self) -> str:
        """The backend's raw rules in the host namespace, with rule handles
        (nftables), without the timestamps (iptables)."""
        if self.rules_via_nft:
            done = self.host.run(["nft", "-a", "list", "ruleset"])
            return done.stdout
        done = self.host.run(["iptables-legacy-save"])
        # chain headers carry packet counters ("[12:720]"), which traffic changes
        return "\n".join(re.sub(r" \[\d+:\d+\]$", "", line)
                         for line in done.stdout.splitlines() if not line.startswith("#"))

    def bridge_netfilter_problem(self) -> str | None:
        """Why traffic between two ports of one bridge in the host namespace
        does not pass netfilter's FORWARD hook, or None when it does.

        It does only with ``br_netfilter`` and ``bridge-nf-call-iptables=1``.
        Since Linux 5.3 that sysctl is per network namespace and a new
        namespace starts with 1, so this only reads it: the tests never load
        the module, which would send bridged traffic through netfilter in
        every namespace, the machine's own included."""
        done = self.host.run(["cat", _BRIDGE_NF_CALL_IPTABLES], check=False)
        if done.returncode != 0:
            return ("br_netfilter is not loaded, so traffic within a bridge never reaches "
                    "netfilter and link rules change nothing (a CI machine may load it "
                    "with `modprobe br_netfilter`; the tests do not)")
        if done.stdout.strip() != "1":
            return (f"{_BRIDGE_NF_CALL_IPTABLES} is {done.stdout.strip()} in the world's "
                    "host namespace, so traffic within a bridge bypasses netfilter")
        return None

    def bridges(self) -> list[str]:
        out = self.host.run(["ip", "-j", "link", "show", "type", "bridge"]).stdout
        return sorted(link["ifname"] for link in json.loads(out or "[]"))

    def addresses_of(self, ifname: str) -> list[str]:
        out = self.host.run(["ip", "-j", "-4", "addr", "show", "dev", ifname]).stdout
        return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(out)
                for a in link["addr_info"]]

    # -- teardown -------------------------------------------------------------

    def close(self) -> None:
        """Kill and destroy every container, end the servers, delete the
        namespaces. Best effort at every step, never raises."""
        for proc in self._servers:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._servers.clear()
        for pid_file in self.run_dir.glob("*/dnsmasq.pid"):  # Locker's DNS forwarders
            try:
                os.kill(int(pid_file.read_text().split()[0]), 15)
            except (OSError, ValueError, IndexError):
                pass
        if self._namespaces:
            for name in self.container_names():
                for command in (("lxc-stop", "-n", name, "-k"), ("lxc-destroy", "-n", name, "-f")):
                    try:
                        self.lxc(*command)
                    except (OSError, subprocess.SubprocessError):
                        pass
        for ns in reversed(self._namespaces):
            ns.delete()
        self._namespaces.clear()
