"""Shared machinery of the forward benchmarks: a network namespace made
for the run, a project of real busybox LXC containers in a temporary
lxcpath, the installed ``locker`` command run in that namespace, timing,
and the report.

Nothing here touches the machine's own network namespace: every command
that reaches the kernel's network runs through ``ip netns exec`` into the
namespace made for the run, which is deleted at the end, also on failure,
after its containers have been stopped and destroyed.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
LOCKER = str(VENV_BIN / "locker")
PYTHON = str(VENV_BIN / "python")

PROJECT = "bench"
CONTAINERS = 10
PORTS_PER_CONTAINER = 100
FIRST_HOST_PORT = 20000
FIRST_CONTAINER_PORT = 1000
REPETITIONS = 5
TIMEOUT = 120


# ----------------------------------------------------------------- machine

def _first(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable ({err})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) \
        else "unavailable"


def machine() -> dict[str, str]:
    """The facts a reader needs to compare these figures with their own."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "nft": _first(["nft", "--version"]),
        "iptables": _first(["iptables", "--version"]),
        "iptables-legacy": _first(["iptables-legacy", "--version"]),
        "lxc": _first(["lxc-create", "--version"]),
        "python (locker)": _first([PYTHON, "--version"]),
        "load average (1, 5, 15 min) at the end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# ------------------------------------------------------------------ timing

@dataclass
class Timings:
    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    def __str__(self) -> str:
        runs = " ".join(f"{s:.3f}" for s in self.seconds)
        return f"{self.name}: median {self.median:.3f} s, min {self.best:.3f} s  (runs: {runs})"


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``argv`` and return (wall seconds, stdout); a failure raises
    with the command's stderr."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    return elapsed, done.stdout


# --------------------------------------------------------------- the world

def project_yaml(containers: int = CONTAINERS, ports: int = PORTS_PER_CONTAINER) -> str:
    """``containers`` busybox containers with ``ports`` TCP forwards each,
    on host ports that never repeat."""
    lines = ["containers:"]
    for c in range(containers):
        lines += [f"  c{c}:", "    template: {name: busybox}", "    ports:"]
        for p in range(ports):
            host = FIRST_HOST_PORT + c * ports + p
            lines.append(f'      - "{host}:{FIRST_CONTAINER_PORT + p}"')
    return "\n".join(lines) + "\n"


class Bench:
    """One namespace, one temporary directory with the project file, the
    lxcpath, the host lock and an empty host configuration. Use as a
    context manager: leaving it stops and destroys the containers and
    deletes the namespace and the directory."""

    def __init__(self, backend_args: Sequence[str] = (), containers: int = CONTAINERS,
                 ports: int = PORTS_PER_CONTAINER, project: str = PROJECT) -> None:
        self.backend_args = list(backend_args)
        self.containers, self.ports = containers, ports
        self.ns = f"lockerbench-{uuid.uuid4().hex[:8]}"
        self.tmp = Path(tempfile.mkdtemp(prefix="lockerbench-"))
        self.lxcpath = self.tmp / "lxc"
        self.project_dir = self.tmp / project
        self.file = self.project_dir / "locker.yaml"
        self._ns_made = False
        self.env = dict(os.environ,
                        LOCKER_RUN_DIR=str(self.tmp / "run"),
                        LOCKER_STATE_DIR=str(self.tmp / "state"),
                        LOCKER_CONFIG=str(self.tmp / "host.yaml"),
                        NO_COLOR="1")
        self.env.pop("LOCKER_BACKEND", None)
        self.env.pop("LOCKER_LINK_BACKEND", None)

    # -- commands in the namespace

    def in_ns(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *argv]

    def in_ns_with_cgroups(self, *argv: str) -> list[str]:
        """For starting containers: ``ip netns exec`` hides the host's
        cgroup hierarchies, which Locker's test helper mounts again."""
        return self.in_ns(PYTHON, "-m", "locker.testing.lxchost", *argv)

    def locker_argv(self, *args: str) -> list[str]:
        return [LOCKER, "-f", str(self.file), "-P", str(self.lxcpath), *self.backend_args, *args]

    def locker(self, *args: str) -> tuple[float, str]:
        """Run the installed ``locker`` command in the namespace, timed."""
        return timed(self.in_ns(*self.locker_argv(*args)), self.env)

    def run(self, *argv: str) -> str:
        """Run a command in the namespace (untimed)."""
        return timed(self.in_ns(*argv), self.env)[1]

    # -- setting up and tearing down

    def __enter__(self) -> Bench:
        try:
            self._setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def _setup(self) -> None:
        for tool in ("ip", "lxc-create", "busybox"):
            if shutil.which(tool) is None:
                raise SystemExit(f"needs the {tool!r} command")
        if os.geteuid() != 0:
            raise SystemExit("needs root: makes a network namespace and LXC containers")
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self._ns_made = True
        self.run("ip", "link", "set", "lo", "up")
        self.lxcpath.mkdir()
        self.project_dir.mkdir()
        (self.tmp / "host.yaml").write_text("{}\n")
        self.file.write_text(project_yaml(self.containers, self.ports))
        print(f"namespace {self.ns}, lxcpath {self.lxcpath}", file=sys.stderr)
        t0 = time.perf_counter()
        timed(self.in_ns_with_cgroups(*self.locker_argv("create")), self.env)
        t1 = time.perf_counter()
        timed(self.in_ns_with_cgroups(*self.locker_argv("start", "--no-ports")), self.env)
        t2 = time.perf_counter()
        print(f"created {self.containers} containers in {t1 - t0:.1f} s, "
              f"started them in {t2 - t1:.1f} s", file=sys.stderr)
        states = self.container_states()
        if set(states.values()) != {"RUNNING"}:
            raise RuntimeError(f"containers not all running: {states}")

    def container_names(self) -> list[str]:
        return sorted(p.name for p in self.lxcpath.iterdir()
                      if (p / "config").exists()) if self.lxcpath.exists() else []

    def container_states(self) -> dict[str, str]:
        return {name: self.run("lxc-info", "-P", str(self.lxcpath), "-n", name, "-sH").strip()
                for name in self.container_names()}

    def teardown(self) -> None:
        """Kill and destroy every container, delete the namespace and the
        directory; each step runs even when an earlier one failed."""
        if self._ns_made:
            for name in self.container_names():
                for argv in (["lxc-stop", "-k"], ["lxc-destroy", "-f"]):
                    try:
                        subprocess.run(self.in_ns(argv[0], "-P", str(self.lxcpath), "-n", name,
                                                  *argv[1:]), capture_output=True, timeout=60)
                    except (OSError, subprocess.TimeoutExpired) as err:
                        print(f"teardown: {argv[0]} {name}: {err}", file=sys.stderr)
            subprocess.run(["ip", "netns", "delete", self.ns], capture_output=True)
            self._ns_made = False
        shutil.rmtree(self.tmp, ignore_errors=True)


# -------------------------------------------------------------- the runs

@dataclass
class Result:
    scenario: str
    locker: Timings
    baseline: Timings
    target: float
    extra: list[Timings] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.locker.median / self.baseline.median

    @property
    def met(self) -> bool:
        return self.locker.median < self.target


FORWARD_PURPOSES = ("dnat", "forward")


def is_forward_comment(comment: str) -> bool:
    """Whether a Locker tag names one half of a port forward of the
    benchmark's project (``locker:PROJECT:CONTAINER:dnat|forward``)."""
    parts = comment.split(":")
    return (len(parts) == 4 and parts[0] == "locker" and parts[1] == PROJECT
            and parts[3] in FORWARD_PURPOSES)


def compare(bench: Bench, scenario: str, target: float,
            snapshot: Callable[[], list[str]],
            baseline_file: Callable[[list[str]], str],
            baseline_argv: Callable[[Path], list[str]],
            repetitions: int = REPETITIONS, per_forward: int = 2) -> Result:
    """Time ``locker ports`` after ``locker rmports``, ``repetitions``
    times, and the baseline tool loading the same forwards' rules from a
    file (also after ``locker rmports``, so both start from the same
    kernel state and end in the same one).

    ``snapshot()`` returns the port-forward rules the kernel holds, one
    normalized line each, sorted; ``baseline_file(lines)`` turns the
    snapshot taken after Locker's first run into the baseline's input;
    ``baseline_argv(path)`` is the command (run in the namespace) that
    loads it. Every run is checked: ``per_forward`` lines per forward after each
    ``ports`` and after each baseline, identical to Locker's first run,
    and none after ``rmports``.
    """
    expected = per_forward * bench.containers * bench.ports
    locker_t = Timings("locker ports")
    baseline_t = Timings("baseline")
    rmports_t = Timings("locker rmports")
    noop_t = Timings("locker ports (nothing to do)")
    ns_exec_t = Timings("ip netns exec true (overhead in both)")
    path = bench.tmp / "baseline.rules"
    reference: list[str] | None = None

    def removed_all(seconds: float) -> float:
        if snapshot():
            raise RuntimeError("locker rmports left port-forward rules behind")
        return seconds

    for _ in range(repetitions):
        rmports_t.seconds.append(removed_all(bench.locker("rmports")[0]))
        locker_t.seconds.append(bench.locker("ports")[0])
        after = snapshot()
        if reference is None:
            if len(after) != expected:
                raise RuntimeError(f"locker ports made {len(after)} rules, not {expected}")
            reference = after
            path.write_text(baseline_file(reference))
        elif after != reference:
            raise RuntimeError("locker ports left other rules than in its first run")
        noop_t.seconds.append(bench.locker("ports")[0])
        removed_all(bench.locker("rmports")[0])
        baseline_t.seconds.append(timed(bench.in_ns(*baseline_argv(path)), bench.env)[0])
        if snapshot() != reference:
            raise RuntimeError("the baseline left other rules than locker ports")
        ns_exec_t.seconds.append(timed(bench.in_ns("true"))[0])
    removed_all(bench.locker("rmports")[0])  # Locker recognises the baseline's rules as its own
    return Result(scenario, locker_t, baseline_t, target, [rmports_t, noop_t, ns_exec_t])


def report(result: Result) -> None:
    print(f"\n== {result.scenario}")
    for timings in (result.locker, result.baseline, *result.extra):
        print(f"  {timings}")
    print(f"  ratio locker/baseline (medians): {result.ratio:.1f}")
    print(f"  target: locker ports under {result.target} s: "
          f"{'met' if result.met else 'MISSED'}")
    print("\n  markdown row:")
    print(f"  | {result.scenario} | {result.locker.median:.3f} / {result.locker.best:.3f} | "
          f"{result.baseline.median:.3f} / {result.baseline.best:.3f} | {result.ratio:.1f} | "
          f"< {result.target} s: {'yes' if result.met else 'no'} |")
    print("\n  machine:")
    for key, value in machine().items():
        print(f"    {key}: {value}")


def profile(bench: Bench, outdir: Path) -> None:
    """cProfile and ``-X importtime`` (separate runs, so that neither
    inflates the other) of ``locker ports`` after ``rmports`` and of a
    ``locker ports`` with nothing to do, written to ``outdir`` (``*.prof``
    for pstats, ``*.importtime`` as Python prints it); prints the 25 most
    expensive functions (cumulative) and the 15 slowest top-level imports."""
    import pstats

    outdir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", bench.backend_args[-1] if bench.backend_args
                  else "auto").strip("-")
    for label, before in (("ports", "rmports"), ("ports-noop", None)):
        stem = outdir / f"{slug}-{label}"
        if before:
            bench.locker(before)
        done = subprocess.run(bench.in_ns(PYTHON, "-X", "importtime", *bench.locker_argv("ports")),
                              capture_output=True, text=True, env=bench.env, timeout=TIMEOUT,
                              check=True)
        Path(f"{stem}.importtime").write_text(done.stderr)
        if before:
            bench.locker(before)
        subprocess.run(bench.in_ns(PYTHON, "-m", "cProfile", "-o", f"{stem}.prof",
                                   *bench.locker_argv("ports")),
                       capture_output=True, env=bench.env, timeout=TIMEOUT, check=True)
        print(f"\n== profile of locker ports ({label}): {stem}.prof")
        pstats.Stats(f"{stem}.prof").sort_stats("cumulative").print_stats(25)
        print(f"== slowest top-level imports ({label}, microseconds, cumulative):")
        rows = []
        for line in done.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[1].strip().isdigit() and \
                    not parts[2].startswith("  "):  # deeper imports are indented
                rows.append((int(parts[1]), parts[2].strip()))
        rows.sort(reverse=True)
        for micros, module in rows[:15]:
            print(f"  {micros:8d}  {module}")


def phases(bench: Bench, repetitions: int = 3) -> None:
    """Run ``phases.py`` (the steps of ``locker ports``, timed one by one
    in process) after ``locker rmports``, and the bare interpreter start,
    ``repetitions`` times; print each phase's median."""
    import json

    backend = bench.backend_args[1] if bench.backend_args[:1] == ["--backend"] else None
    argv = bench.in_ns(PYTHON, str(Path(__file__).with_name("phases.py")), str(bench.file),
                       str(bench.lxcpath), *([backend] if backend else []))
    runs: dict[str, list[float]] = {}
    for _ in range(repetitions):
        runs.setdefault("interpreter start-up (python -c pass, with site)", []).append(
            timed(bench.in_ns(PYTHON, "-c", "pass"))[0])
        bench.locker("rmports")
        for phase, seconds in json.loads(timed(argv, bench.env)[1]).items():
            runs.setdefault(phase, []).append(seconds)
    print(f"\n== phases of locker ports (median of {repetitions}, in process, no profiler)")
    for phase, seconds in runs.items():
        print(f"  {statistics.median(seconds) * 1000:7.1f} ms  {phase}")


def main_for(scenario: str, target: float, backend_args: Sequence[str],
             snapshot: Callable[[Bench], list[str]], baseline_file: Callable[[list[str]], str],
             baseline_argv: Callable[[Path], list[str]], per_forward: int = 2) -> int:
    # SIGTERM and SIGHUP unwind like Ctrl-C, so the teardown still runs
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    repetitions = int(os.environ.get("BENCH_REPETITIONS", REPETITIONS))
    profile_dir = os.environ.get("BENCH_PROFILE")
    forwards = int(os.environ.get("BENCH_FORWARDS", CONTAINERS * PORTS_PER_CONTAINER))
    ports = max(1, forwards // CONTAINERS)
    scenario = scenario.replace("1,000", f"{ports * CONTAINERS:,}")
    with Bench(backend_args, CONTAINERS, ports) as bench:
        result = compare(bench, scenario, target, lambda: snapshot(bench), baseline_file,
                         baseline_argv, repetitions, per_forward)
        if os.environ.get("BENCH_PHASES"):
            phases(bench)
        if profile_dir:
            profile(bench, Path(profile_dir))
    report(result)
    return 0
