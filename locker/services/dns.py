"""A DNS forwarder per project: dnsmasq on the project's bridge address.

It answers the project's containers by name, ``NAME.PROJECT`` and fqdn
(from a hosts file Locker rewrites when containers start and stop), and
forwards every other name to the host's resolvers (``/etc/resolv.conf`` of
the namespace Locker runs in). So ``dns: ["$bridge"]`` works out of the box.

Its files live in ``$LOCKER_RUN_DIR/<project>/`` (default ``/run/locker``):
``dnsmasq.conf``, ``hosts`` and ``dnsmasq.pid``. It binds only to the
bridge's address (``bind-interfaces``), serves no DHCP and reads neither
the host's ``/etc/hosts`` nor its own default configuration. dnsmasq drops
to an unprivileged user and then reads the hosts file by path, so every
directory above it must be searchable by others (as ``/run`` is).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from locker.errors import LockerError

COMMAND = "dnsmasq"
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class DnsForwarder:
    """The forwarder of one project, found under ``run_dir``."""

    project: str
    run_dir: Path

    @property
    def directory(self) -> Path:
        return self.run_dir / self.project

    @property
    def pid_file(self) -> Path:
        return self.directory / "dnsmasq.pid"

    @property
    def hosts_file(self) -> Path:
        return self.directory / "hosts"

    @property
    def config_file(self) -> Path:
        return self.directory / "dnsmasq.conf"

    def pid(self) -> int | None:
        """The running forwarder's process id, or None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        wanted = f"--conf-file={self.config_file}".encode()
        return pid if wanted in command else None

    def config(self, gateway: IPv4Address) -> str:
        return "".join(f"{line}\n" for line in (
            f"listen-address={gateway}", "bind-interfaces", "except-interface=lo",
            "no-hosts", f"addn-hosts={self.hosts_file}", f"pid-file={self.pid_file}",
            f"local=/{self.project}/", "domain-needed", "cache-size=500",
        ))

    @staticmethod
    def hosts_text(names: Mapping[IPv4Address, tuple[str, ...]]) -> str:
        return "".join(f"{ip}\t{' '.join(n)}\n" for ip, n in sorted(names.items()))

    def current_hosts(self) -> str | None:
        try:
            return self.hosts_file.read_text()
        except OSError:
            return None

    def write_hosts(self, names: Mapping[IPv4Address, tuple[str, ...]]) -> bool:
        """Replace the names it answers; True when the file changed."""
        text = self.hosts_text(names)
        if self.current_hosts() == text:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.hosts_file.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.chmod(0o644)
        os.replace(temporary, self.hosts_file)
        return True

    def start(self, gateway: IPv4Address) -> None:
        """Start it (it daemonizes and writes its pid file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)
        self.config_file.write_text(self.config(gateway))
        if not self.hosts_file.exists():
            self.write_hosts({})
        try:
            done = subprocess.run([COMMAND, f"--conf-file={self.config_file}"],
                                  capture_output=True, text=True, timeout=START_TIMEOUT,
                                  stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise LockerError("The DNS forwarder needs dnsmasq: install dnsmasq-base, or "
                              "turn it off with `dns_forwarder: false` in the host "
                              "file.") from None
        except subprocess.TimeoutExpired:
            raise LockerError(f"dnsmasq did not start within {START_TIMEOUT:g} s.") from None
        if done.returncode != 0:
            cause = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
            raise LockerError(f"dnsmasq would not start on {gateway}: {cause[0]}")

    def reload(self) -> None:
        """Make it read the hosts file again. Right after ``start`` it may
        not have written its pid file yet (it does once its signal handlers
        are set): wait a moment for it."""
        deadline = time.monotonic() + START_TIMEOUT
        pid = self.pid()
        while pid is None and self.config_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
            pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        for path in (self.pid_file, self.hosts_file, self.config_file):
            path.unlink(missing_ok=True)
        try:
            self.directory.rmdir()
        except OSError:
            pass
