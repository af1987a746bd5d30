"""Making a backend's kernel transaction fail midway, from outside the backend.

The conformance suites prove that a transaction that fails leaves the
kernel as it was. ``failing_transaction(n, workdir)`` arms a fault for the
``n``-th kernel transaction the test process (or a command it starts) makes
while the context is active: that transaction gets a command appended that
the kernel or the tool refuses *after* the transaction's own commands were
accepted, so the whole transaction must fail, and what the backend
committed before it in the same hook call must be undone by the backend.

It works at the boundaries every backend crosses, so a backend needs no
seam of its own:

- the nftables Python binding (``nftables.Nftables.cmd``, which ``json_cmd`` calls):
  a command deleting a rule that does not exist is appended to the batch;
- python-iptables (``iptc.Table.commit``): a MASQUERADE rule, which the
  kernel refuses outside ``nat POSTROUTING``, is appended before the commit;
- the commands ``nft`` (``-f``) and ``iptables*-restore``, found on ``PATH``:
  a wrapper put first on ``PATH`` appends the same refused command to the
  script it passes on (before the last ``COMMIT`` for iptables-restore).

Reads (``nft list``, ``iptables-save``) are not transactions and are not
counted. ``Fault.fired`` tells whether the armed transaction happened.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

#: The commands the PATH wrapper stands in for.
WRAPPED = ("nft", "iptables-restore", "iptables-legacy-restore", "iptables-nft-restore")
#: What is appended to an nft batch: a rule deletion the kernel refuses
#: (no rule has that handle), after a table and chain of its own so that
#: the batch's own commands are evaluated first.
NFT_POISON_TEXT = ("add table ip locker_fault\n"
                   "add chain ip locker_fault poison\n"
                   "delete rule ip locker_fault poison handle 1000000\n")
NFT_POISON_JSON = [
    {"add": {"table": {"family": "ip", "name": "locker_fault"}}},
    {"add": {"chain": {"family": "ip", "table": "locker_fault", "name": "poison"}}},
    {"delete": {"rule": {"family": "ip", "table": "locker_fault", "chain": "poison",
                         "handle": 1000000}}},
]
IPTABLES_POISON = "-A LOCKER_FAULT_NO_SUCH_CHAIN -j ACCEPT"
CHANGING_VERBS = {"add", "create", "insert", "replace", "delete", "destroy", "flush", "reset"}


class Fault:
    """One armed fault: a countdown kept in a file, so that commands the
    test process starts count against the same number."""

    def __init__(self, workdir: Path, n: int) -> None:
        self.counter = workdir / "countdown"
        self.counter.write_text(str(n))
        self._fired: bool | None = None

    @property
    def fired(self) -> bool:
        if self._fired is not None:
            return self._fired
        return int(self.counter.read_text()) <= 0

    def disarm(self) -> None:
        """Keep the answer of ``fired`` and let no later transaction fail."""
        self._fired = self.fired
        self.counter.write_text("0")

    def take(self) -> bool:
        return take(self.counter)


def take(counter: Path) -> bool:
    """Count one transaction; True when it is the one to fail."""
    with open(counter, "r+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        left = int(f.read() or "0")
        if left <= 0:
            return False
        f.seek(0)
        f.truncate()
        f.write(str(left - 1))
        return left == 1


def is_changing_json(root: Any) -> bool:
    commands = root.get("nftables", []) if isinstance(root, dict) else []
    return any(isinstance(c, dict) and CHANGING_VERBS & c.keys() for c in commands)


def poisoned_json(root: dict) -> dict:
    return {**root, "nftables": list(root["nftables"]) + NFT_POISON_JSON}


def is_changing_text(text: str) -> bool:
    words = [line.split()[0] for line in text.splitlines() if line.split()
             and not line.lstrip().startswith("#")]
    return any(w in CHANGING_VERBS for w in words)


@contextmanager
def failing_transaction(n: int, workdir: Path) -> Iterator[Fault]:
    """Arm a fault for the ``n``-th kernel transaction (1 is the first)."""
    fault = Fault(workdir, n)
    with ExitStack() as stack:
        stack.enter_context(_nftables_binding(fault))
        stack.enter_context(_python_iptables(fault))
        stack.enter_context(_commands_on_path(fault, workdir))
        try:
            yield fault
        finally:
            fault.disarm()


@contextmanager
def _nftables_binding(fault: Fault) -> Iterator[None]:
    try:
        import nftables
    except ImportError:
        yield
        return
    cls = nftables.Nftables
    cmd = cls.cmd  # json_cmd calls it too

    def failing_cmd(self, cmdline):
        try:
            root = json.loads(cmdline)
        except ValueError:
            if is_changing_text(cmdline) and fault.take():
                cmdline = cmdline.rstrip("\n") + "\n" + NFT_POISON_TEXT
        else:
            if is_changing_json(root) and fault.take():
                cmdline = json.dumps(poisoned_json(root))
        return cmd(self, cmdline)

    cls.cmd = failing_cmd
    try:
        yield
    finally:
        cls.cmd = cmd


@contextmanager
def _python_iptables(fault: Fault) -> Iterator[None]:
    iptc = sys.modules.get("iptc")  # only where the backend loaded it (its loader sets it up)
    if iptc is None:
        yield
        return
    commit = iptc.Table.commit

    def failing_commit(self):
        if fault.take():
            rule = iptc.Rule()
            rule.target = rule.create_target("MASQUERADE")
            chain = "FORWARD" if self.name == "filter" else "PREROUTING"
            iptc.Chain(self, chain).append_rule(rule)
        return commit(self)

    iptc.Table.commit = failing_commit
    try:
        yield
    finally:
        iptc.Table.commit = commit


_WRAPPER = '''#!{python}
import os, subprocess, sys
sys.path.insert(0, {kit!r})
from locker.testing import faults
name = os.path.basename(sys.argv[0])
real = {real!r}[name]
argv = sys.argv[1:]
counter = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "..", "countdown")
script = None
if name == "nft" and "-f" in argv:
    i = argv.index("-f")
    source = argv[i + 1]
    script = sys.stdin.read() if source in ("-", "/dev/stdin") else open(source).read()
    argv[i + 1] = "-"
    changing = faults.is_changing_json(faults.json.loads(script)) if "-j" in argv or "--json" in argv \\
        else faults.is_changing_text(script)
    if changing and faults.take(counter):
        if "-j" in argv or "--json" in argv:
            script = faults.json.dumps(faults.poisoned_json(faults.json.loads(script)))
        else:
            script = script.rstrip("\\n") + "\\n" + faults.NFT_POISON_TEXT
elif name != "nft":
    files = [a for a in argv if not a.startswith("-")]
    script = open(files[0]).read() if files else sys.stdin.read()
    argv = [a for a in argv if a not in files]
    if faults.take(counter):
        lines = script.splitlines()
        last = max(i for i, line in enumerate(lines) if line.strip() == "COMMIT")
        lines.insert(last, faults.IPTABLES_POISON)
        script = "\\n".join(lines) + "\\n"
if script is None:
    os.execv(real, [real] + argv)
done = subprocess.run([real] + argv, input=script, text=True)
sys.exit(done.returncode)
'''


@contextmanager
def _commands_on_path(fault: Fault, workdir: Path) -> Iterator[None]:
    real = {name: shutil.which(name) for name in WRAPPED}
    real = {name: path for name, path in real.items() if path}
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    kit = str(Path(__file__).resolve().parents[2])
    for name in real:
        wrapper = bin_dir / name
        wrapper.write_text(_WRAPPER.format(python=sys.executable, kit=kit, real=real))
        wrapper.chmod(0o755)
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{old}"
    try:
        yield
    finally:
        os.environ["PATH"] = old
