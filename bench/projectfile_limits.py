"""How long ``locker validate``'s loading takes, and how much memory, for
hostile project files: the bombs of issue 13 and the worst files that stay
just within the limits of ``locker.yamlnodes`` and ``locker.projectfile``.

    .venv/bin/python bench/projectfile_limits.py

Each file is loaded by ``load_project`` in a fresh Python process; the
figures are the load's own time and the process's peak RSS (Python itself
is about 20 MB of it, read as VmHWM). No root, no network.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

from collections.abc import Callable
from pathlib import Path

from locker.projectfile import MAX_ENTRIES
from locker.yamlnodes import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

MB = 1 << 20
LOAD = """\
import sys, time
from pathlib import Path
from locker.errors import ConfigError
from locker.projectfile import load_project
start = time.perf_counter()
try:
    load_project(Path(sys.argv[1]), "bench")
    outcome = "valid"
except ConfigError as error:
    outcome = f"{len(error.problems)} lines: " + error.problems[0].split(": ", 1)[1][:70]
seconds = time.perf_counter() - start
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(f"{seconds:.3f} {int(peak) / 1024:.1f} {outcome}")
"""


def head(containers: str = "") -> str:
    return "containers:\n" + containers


def ports_block(lines: list[str]) -> str:
    return "containers:\n  web:\n    template: busybox\n    ports:\n" + "".join(lines)


def nested(depth: int) -> str:
    return "containers: " + "[" * depth + "]" * depth + "\n"


def defaults_fanout(ports: int, containers: int, alias: bool = False) -> str:
    listed = "[" + ", ".join(f"{20000 + i}:{1 + i}" for i in range(ports)) + "]"
    if alias:
        body = f"containers:\n  c0: {{ports: &p {listed}}}\n"
        return body + "".join(f"  c{i}: {{ports: *p}}\n" for i in range(1, containers))
    body = f"defaults:\n  template: busybox\n  ports: {listed}\ncontainers:\n"
    return body + "".join(f"  c{i}: {{}}\n" for i in range(containers))


def bad_links_fanout(links: int, containers: int) -> str:
    listed = "[" + ", ".join(f"nolink{i}" for i in range(links)) + "]"
    body = f"defaults:\n  links: {listed}\ncontainers:\n"
    return body + "".join(f"  c{i}: {{}}\n" for i in range(containers))


def many_forwards(size: int) -> str:
    lines, total, i = [], 60, 0
    while total < size:
        line = f"      - {1 + i % 65535}:{1 + i % 65535}/{('tcp', 'udp')[i // 65535 % 2]}\n"
        lines.append(line)
        total += len(line)
        i += 1
    return ports_block(lines)


def one_port(size: int) -> str:
    return ports_block(["      - 80:80\n"] * (size // 14))


def flow_forwards(count: int) -> str:
    listed = ",".join(f"{1 + i % 65535}:1" for i in range(count))
    return f"containers: {{web: {{ports: [{listed}]}}}}\n"


def bad_ports(count: int) -> str:
    listed = ",".join(f"x{i}" for i in range(count))
    return f"containers: {{web: {{ports: [{listed}]}}}}\n"


def many_containers(count: int) -> str:
    return "containers: {" + ",".join(f"c{i}: {{}}" for i in range(count)) + "}\n"


def laughs(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join([*lines, f"containers: {{web: {{ports: *a{levels - 1}}}}}"]) + "\n"


def within_limits() -> list[tuple[str, Callable[[], str]]]:
    fits = MAX_ENTRIES // 250 - 2  # per container, within MAX_ENTRIES
    aliased = MAX_NODES // 250 - 6  # each alias counts its list's nodes again
    return [
        (f"nesting {MAX_DEPTH} deep", lambda: nested(MAX_DEPTH - 1)),
        ("one port repeated, 1 MiB", lambda: one_port(MAX_FILE_BYTES - 100)),
        (f"one port repeated {MAX_NODES - 10:,} times",
         lambda: ports_block(["      - 80:80\n"] * (MAX_NODES - 10))),
        ("distinct forwards, 1 MiB", lambda: many_forwards(MAX_FILE_BYTES - 100)),
        (f"{MAX_NODES - 10:,} distinct forwards", lambda: ports_block(
            [f"      - {1 + i}:{1 + i}\n" for i in range(MAX_NODES - 10)])),
        (f"{MAX_NODES // 2 - 10:,} forwards in a flow list",
         lambda: flow_forwards(MAX_NODES // 2 - 10)),
        (f"{MAX_NODES // 2 - 10:,} bad ports", lambda: bad_ports(MAX_NODES // 2 - 10)),
        (f"defaults: {fits} ports x 250 containers", lambda: defaults_fanout(fits, 250)),
        (f"alias: {aliased} ports x 250 containers",
         lambda: defaults_fanout(aliased, 250, True)),
        (f"defaults: {fits} bad links x 250", lambda: bad_links_fanout(fits, 250)),
        (f"{MAX_NODES // 2 - 10:,} containers", lambda: many_containers(MAX_NODES // 2 - 10)),
    ]


BOMBS: list[tuple[str, Callable[[], str]]] = [
    ("issue 13: [[[... 100,000 deep", lambda: nested(100_000)),
    ("issue 13: defaults 1,000 ports x 250", lambda: defaults_fanout(1000, 250)),
    ("alias 1,000 ports x 250 containers", lambda: defaults_fanout(1000, 250, True)),
    ("issue 13: 50 MB of forwards", lambda: many_forwards(50 * MB)),
    ("issue 13: 50 MB of one port", lambda: one_port(50 * MB)),
    ("billion laughs, 9 levels", lambda: laughs(9)),
]


def measure(path: Path) -> tuple[str, float, float]:
    child = subprocess.Popen([sys.executable, "-c", LOAD, str(path)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    seconds, rss, outcome = child.stdout.read().strip().split(" ", 2)
    child.wait()
    return outcome, float(seconds), float(rss)


def main() -> None:
    print(f"limits: {MAX_FILE_BYTES:,} bytes, depth {MAX_DEPTH}, {MAX_NODES:,} nodes, "
          f"{MAX_ENTRIES:,} list entries")
    print(f"{'file':42} {'size':>10} {'load s':>7} {'RSS MB':>7}  outcome")
    with tempfile.TemporaryDirectory() as folder:
        for title, group in (("within the limits", within_limits()), ("bombs", BOMBS)):
            print(f"-- {title}")
            for name, make in group:
                path = Path(folder, "locker.yaml")
                path.write_text(make())
                outcome, seconds, rss = measure(path)
                print(f"{name:42} {path.stat().st_size:>10,} {seconds:>7.3f} {rss:>7.1f}  "
                      f"{outcome}")


if __name__ == "__main__":
    main()
