"""The project file: loading into values, and every kind of problem reported
with its file, line, key and value, all in one run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from locker.errors import ConfigError
from locker.project import (CgroupSetting, CloneSource, ContainerSpec, DownloadSource, LinkSpec,
                            PortSpec, TemplateSource, VolumeSpec)
from locker.projectfile import MAX_ENTRIES, load_project
from locker.yamlnodes import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, MAX_SHOWN

DATA = Path(__file__).parent.parent / "data"


def write(tmp_path: Path, yaml_text: str, directory: str = "proj") -> Path:
    folder = tmp_path / directory
    folder.mkdir(exist_ok=True)
    path = folder / "locker.yaml"
    path.write_text(textwrap.dedent(yaml_text))
    return path


def problems(tmp_path: Path, yaml_text: str, name: str | None = None) -> list[str]:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_project(path, name)
    assert caught.value.exit_status == 2
    assert str(caught.value) == f"{path} has {len(caught.value.problems)} " + (
        "problem." if len(caught.value.problems) == 1 else "problems.")
    return [line.removeprefix(f"{path}:") for line in caught.value.problems]


def only_problem(tmp_path: Path, yaml_text: str) -> str:
    found = problems(tmp_path, yaml_text)
    assert len(found) == 1, found
    return found[0]


def load(tmp_path: Path, yaml_text: str, name: str | None = None):
    return load_project(write(tmp_path, yaml_text), name)


# --- good files -------------------------------------------------------------

def test_spec_example_loads_into_values(tmp_path: Path) -> None:
    path = tmp_path / "shop" / "locker.yaml"
    path.parent.mkdir()
    shutil.copy(DATA / "spec-example.yaml", path)
    project = load_project(path)
    assert project.name == "shop"
    assert project.path == path.resolve()
    assert project.container_names == ("web", "db")
    assert project.container("web") == ContainerSpec(
        name="web",
        source=TemplateSource("busybox"),
        ports=(PortSpec(8080, 80), PortSpec(8443, 443, "tcp", IPv4Address("192.0.2.10")),
               PortSpec(5353, 53, "udp")),
        links=(LinkSpec("db", "database"),),
        fqdn="web.example.net",
        dns=("192.0.2.53", "$bridge", "$copy"),
        volumes=(VolumeSpec("/srv/shop/web/log", "/var/log"),),
        # cgroup merges per setting: the default memory limit stays
        cgroup=(CgroupSetting("memory.limit_in_bytes", "200000000"), CgroupSetting("cpu.shares", "512")),
    )
    assert project.container("db") == ContainerSpec(
        name="db", source=TemplateSource("busybox"), dns=("$bridge", "$copy"),
        cgroup=(CgroupSetting("memory.limit_in_bytes", "200000000"),))


def test_unquoted_ports_keep_their_text(tmp_path: Path) -> None:
    # YAML 1.1 reads unquoted 80:22 as the base-60 integer 4822
    project = load(tmp_path, """\
        containers:
          web:
            ports: [8080:80, 80:22, 5353:53/UDP]
          db:
            ports:
              - 2222:22
              - 0.0.0.0:53:53/udp
        """)
    assert project.container("web").ports == (
        PortSpec(8080, 80), PortSpec(80, 22), PortSpec(5353, 53, "udp"))
    assert project.container("db").ports == (PortSpec(2222, 22), PortSpec(53, 53, "udp"))


def test_project_name_from_option_wins(tmp_path: Path) -> None:
    project = load(tmp_path, "containers: {web: {}}\n", name="other")
    assert project.name == "other"
    assert project.container("web") == ContainerSpec(name="web")


def test_defaults_merge(tmp_path: Path) -> None:
    project = load(tmp_path, """\
        defaults:
          template: {name: busybox}
          dns: ["$bridge"]
          ports: ["8080:80"]
          volumes: ["/srv/$project/$name:/data"]
          cgroup: ["memory.max=1G", "cpu.weight=100"]
        containers:
          a:
            dns: []
            cgroup: ["memory.max=2G"]
            ports:
          b:
            download: {dist: debian, release: bookworm, arch: amd64, variant: default}
            ports: ["8081:80"]
          c:
            clone: b
            volumes: ["/srv/$fqdn:/www"]
            fqdn: c.example.net
            ports: ["8082:80"]
        """)
    a, b, c = project.containers
    assert a == ContainerSpec(
        name="a", source=TemplateSource("busybox"), dns=(),
        volumes=(VolumeSpec("/srv/proj/a", "/data"),),
        cgroup=(CgroupSetting("memory.max", "2G"), CgroupSetting("cpu.weight", "100")))
    assert b.source == DownloadSource("debian", "bookworm", "amd64", "default")
    assert b.dns == ("$bridge",) and b.ports == (PortSpec(8081, 80),)
    assert c.source == CloneSource("b")
    assert c.volumes == (VolumeSpec("/srv/c.example.net", "/www"),)


def test_links_from_defaults_skip_their_target(tmp_path: Path) -> None:
    project = load(tmp_path, """\
        defaults:
          links: ["db:database"]
        containers: {web: {}, db: {}, cache: {links: []}}
        """)
    assert project.container("web").links == (LinkSpec("db", "database"),)
    assert project.container("db").links == ()
    assert project.container("cache").links == ()


def test_template_forms(tmp_path: Path) -> None:
    project = load(tmp_path, """\
        containers:
          a: {template: busybox}
          b:
            template: {name: debian, release: bookworm, arch: 1}
          c:
          d: {clone: base_image}
        """)
    assert project.container("a").source == TemplateSource("busybox")
    assert project.container("d").source == CloneSource("base_image")
    assert project.container("b").source == TemplateSource(
        "debian", (("release", "bookworm"), ("arch", "1")))
    assert project.container("c") == ContainerSpec(name="c")


# --- whole-file problems ----------------------------------------------------

def test_missing_file_suggests_f(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such project file.*-f FILE") as caught:
        load_project(tmp_path / "locker.yaml")
    assert caught.value.exit_status == 2


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    found = only_problem(tmp_path, """\
        containers:
          web:
            ports: ["80:80"
          db: {}
        """)
    assert found.startswith("4: YAML syntax error: ")


def test_more_than_one_document(tmp_path: Path) -> None:
    found = only_problem(tmp_path, "containers: {web: {}}\n---\ncontainers: {db: {}}\n")
    assert found.startswith("2: YAML syntax error: expected a single document")


def test_control_character_in_file(tmp_path: Path) -> None:
    found = only_problem(tmp_path, "containers:\n  web: {}\n  \x07db: {}\n")
    assert found.startswith("3: not readable as YAML text: ")


def test_problem_lines_never_break(tmp_path: Path) -> None:
    found = only_problem(tmp_path, 'containers:\n  web: {fqdn: "a\\u2028b\\nc"}\n')
    assert found.startswith('2: containers.web.fqdn: "a\\u2028b\\nc": ')
    assert len(found.splitlines()) == 1


def test_empty_file(tmp_path: Path) -> None:
    assert "the file is empty" in only_problem(tmp_path, "# nothing\n")


def test_containers_required(tmp_path: Path) -> None:
    assert only_problem(tmp_path, "defaults: {}\n").startswith("1: containers: missing;")
    assert only_problem(tmp_path, "containers:\n").startswith("1: containers: no containers")
    assert "expected a mapping" in only_problem(tmp_path, "containers: [web]\n")


@pytest.mark.parametrize("directory, reason, key", [
    ("my_app", "the file's directory name is not a valid project name", "name: my-app"),
    ("a" * 33, "at most 32 characters", "name: " + "a" * 32),
])
def test_bad_project_name_from_directory(tmp_path: Path, directory: str, reason: str,
                                         key: str) -> None:
    path = write(tmp_path, "containers: {web: {}}\n", directory=directory)
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    [found] = caught.value.problems
    assert found.startswith(f'{path}: project: "{directory}": ')
    assert reason in found and f"a top-level {key} in the file" in found
    assert load_project(path, "app").name == "app"


def test_a_directory_with_a_hyphen_names_its_project(tmp_path: Path) -> None:
    path = write(tmp_path, "containers: {web: {}}\n", directory="my-app")
    assert load_project(path).name == "my-app"


def test_the_name_key_names_the_project(tmp_path: Path) -> None:
    path = write(tmp_path, "name: shop\ncontainers: {web: {}}\n", directory="my_app")
    assert load_project(path).name == "shop"
    assert load_project(path, "other").name == "other"


@pytest.mark.parametrize("value", ["my_shop", "9", "[a]", '""'])
def test_a_bad_name_key_is_reported_at_its_line(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"containers: {{web: {{}}}}\nname: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    [found] = caught.value.problems
    assert found.startswith(f"{path}:2: name: ") and "not a valid project name" in found


def test_bad_project_name_from_option(tmp_path: Path) -> None:
    [found] = problems(tmp_path, "containers: {web: {}}\n", name="9lives")
    assert "given with -p" in found


def test_all_problems_at_once_in_file_order(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        containers:
          web:
            ports: ["0:80"]
            links: [dbb]
          db:
            prots: ["80:80"]
          my_db: {}
        """)
    assert found == [
        '3: containers.web.ports[0]: "0:80": HOST_PORT 0 is out of range; '
        "use a port from 1 to 65535",
        '4: containers.web.links[0]: "dbb": no container dbb in this project; '
        'did you mean "db"?',
        '6: containers.db.prots: unknown key; did you mean "ports"?',
        "7: containers.my_db: not a valid container name: a container name is a letter "
        "followed by letters, digits and hyphens, not ending in a hyphen, at most 32 "
        "characters (it becomes part of interface names, rule comments and hostnames)",
    ]


# --- problems of single keys ------------------------------------------------

@pytest.mark.parametrize("port, message", [
    ("0:80", "HOST_PORT 0 is out of range"),
    ("80:65536", "CONTAINER_PORT 65536 is out of range"),
    ("http:80", 'HOST_PORT "http" is not a number'),
    ("80", "expected a host and a container port"),
    ("1:2:3:4", "an IPv6 HOST_IP goes in brackets"),
    ("[::1]:80:80", 'HOST_IP "[::1]" would reach nothing'),
    ("[2001:db8::1]:80", "expected a host and a container port after [IPV6]:"),
    ("[2001:db8::zz]:80:80", 'HOST_IP "[2001:db8::zz]" is not an IPv6 address'),
    ("[::]:80:80", 'HOST_IP "[::]" means every address'),
    ("300.1.1.1:80:80", 'HOST_IP "300.1.1.1" is not an IPv4 address'),
    ("80:80/sctp", 'protocol "sctp" is not supported; use tcp or udp'),
    ("8000-8010:80", 'HOST_PORT "8000-8010" and CONTAINER_PORT "80" differ in length '
                     "(11 ports and 1 port); give ranges of the same length on both sides"),
    ("8000-8010:9000-9009", 'HOST_PORT "8000-8010" and CONTAINER_PORT "9000-9009" differ '
                            "in length (11 ports and 10 ports)"),
    ("8010-8000:9010-9000", 'HOST_PORT "8010-8000" is an inverted range (it ends before '
                            "it starts); write it as 8000-8010"),
    ("8000-8010:65530-65540", 'CONTAINER_PORT "65530-65540": port 65540 is out of range; '
                              "use a port from 1 to 65535"),
    ("0-10:0-10", 'HOST_PORT "0-10": port 0 is out of range'),
    ("8000-:80-", 'HOST_PORT "8000-" is not a number or a range of numbers'),
    ("8000-8010-8020:1-21", 'HOST_PORT "8000-8010-8020" is not a number or a range'),
])
def test_bad_port(tmp_path: Path, port: str, message: str) -> None:
    found = only_problem(tmp_path, f"""\
        containers:
          web:
            ports:
              - "8080:80"
              - "{port}"
        """)
    assert found.startswith(f'5: containers.web.ports[1]: "{port}": {message}')


def test_same_forward_twice_across_containers(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        containers:
          web:
            ports: ["8080:80", "192.0.2.1:53:53/udp", "192.0.2.1:25:25"]
          db:
            ports: ["8080:5432", "53:53/udp", "53:53", "192.0.2.2:25:25"]
        """)
    assert found == [
        '5: containers.db.ports[0]: "8080:5432": host port 8080/tcp is already forwarded '
        "to container web at line 3; use another HOST_PORT",
        '5: containers.db.ports[1]: "53:53/udp": host port 53/udp is already forwarded '
        "to container web at line 3 (a forward without HOST_IP takes the port on every "
        "address); use another HOST_PORT",
    ]


def test_port_ranges_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        containers:
          web:
            ports: ["8000-8010:9000-9010", "192.0.2.1:53-54:53-54/UDP", "7000-7000:70-70"]
        """)
    assert load_project(path).container("web").ports == (
        PortSpec(8000, 9000, "tcp", None, count=11),
        PortSpec(53, 53, "udp", IPv4Address("192.0.2.1"), count=2),
        PortSpec(7000, 70))


def test_overlapping_ranges_are_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        containers:
          web:
            ports: ["8000-8010:9000-9010", "8010-8012:10-12", "192.0.2.1:53-60:53-60/udp"]
          db:
            ports: ["7999-8000:1-2", "8011:80", "8005:80/udp", "192.0.2.2:53-60:53-60/udp",
                    "50-53:50-53/udp", "8011-8020:8011-8020"]
        """)
    assert found == [
        '3: containers.web.ports[1]: "8010-8012:10-12": host ports 8010-8012/tcp overlap '
        "8000-8010/tcp, already forwarded to container web at line 3; use other host ports",
        '5: containers.db.ports[0]: "7999-8000:1-2": host ports 7999-8000/tcp overlap '
        "8000-8010/tcp, already forwarded to container web at line 3; use other host ports",
        '6: containers.db.ports[4]: "50-53:50-53/udp": host ports 50-53/udp overlap '
        "53-60/udp, already forwarded to container web at line 3 (a forward without "
        "HOST_IP takes the port on every address); use other host ports",
        '6: containers.db.ports[5]: "8011-8020:8011-8020": host ports 8011-8020/tcp overlap '
        "8011/tcp, already forwarded to container db at line 5; use other host ports",
    ]


def test_forward_from_defaults_clashes(tmp_path: Path) -> None:
    found = only_problem(tmp_path, """\
        defaults:
          ports: ["8080:80"]
        containers: {web: {}, db: {}}
        """)
    assert found.startswith('2: defaults.ports[0]: "8080:80": defaults give this forward '
                            "to both web and db")


def test_bad_links(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        containers:
          web:
            links: ["web", "cache", "db:bad alias", "db:x\\ny", "db:ok-alias.lan"]
          db: {}
        """)
    assert found[:3] == [
        '3: containers.web.links[0]: "web": container web cannot link to itself; '
        "link to another container",
        '3: containers.web.links[1]: "cache": no container cache in this project; '
        "containers: web, db",
        '3: containers.web.links[2]: "db:bad alias": alias "bad alias" is not a valid DNS '
        'name (label "bad alias"): use labels of letters, digits and hyphens (not first or '
        "last), 1 to 63 characters, separated by dots; write NAME[:ALIAS]",
    ]
    assert len(found) == 4
    assert "\n" not in found[3]  # one line per problem, whatever the value holds
    assert found[3].startswith('3: containers.web.links[3]: "db:x\\ny": alias')


@pytest.mark.parametrize("key, value, message", [
    ("fqdn", "-web.example.net", 'is not a valid DNS name (label "-web")'),
    ("fqdn", "web..example", "an empty label"),
    ("fqdn", "a" * 64 + ".net", "is not a valid DNS name"),
    ("dns", ["8.8.8.300"], "not a nameserver"),
    ("dns", ["$bridges"], "not a nameserver"),
    ("dns", ["2001:db8::1"], "IPv6 nameservers are not supported"),
    ("dns", "8.8.8.8", "expected a list, found a single value"),
    ("cgroup", ["memory.max"], "expected key=value"),
    ("cgroup", ["memory max=1"], "is not a cgroup key"),
    ("volumes", ["/srv:/data:ro"], "exactly one colon"),
    ("volumes", ["srv:/data"], 'HOST_DIR "srv" is not an absolute path'),
    ("volumes", ["/srv:/data/../etc"], 'contains ".."'),
    ("volumes", ["/srv/$fqdn:/data"], "$fqdn is used but the container has no fqdn"),
    ("volumes", ["/srv/$name_x:/data"], "unknown variable $name_x"),
    ("volumes", ["/srv/a b:/data"], "contains whitespace"),
    ("clone", "web", "a container cannot be a clone of itself"),
    ("download", {"dist": "debian"}, "missing release, arch"),
    ("download", {"dist": "debian", "release": "x", "arch": "amd64", "varient": "a"},
     'unknown key; did you mean "variant"?'),
    ("template", {"release": "bookworm"}, "missing name"),
    ("template", {"name": "busy box"}, "expected a plain word"),
    # everything `start` would refuse later is refused here, with its line and key
    ("cgroup", ["Memory.max=100M"], '"Memory.max" is not a cgroup key'),
    ("cgroup", ["memory.max=1\u0007"], "holds control characters"),
    ("volumes", ["/tmp/../tmp/x:/data"], 'HOST_DIR "/tmp/../tmp/x" contains ".."'),
    ("volumes", ["/srv:/"], "is the container's root directory"),
    ("volumes", ["/srv:/./"], "is the container's root directory"),
    ("volumes", ["/srv/a\u0085b:/data"], "contains whitespace or control characters"),
    # no value may turn into an option of lxc-create or lxc-copy
    ("clone", "--help", "not an LXC container name"),
    ("clone", "-n", "not an LXC container name"),
    ("clone", ".hidden", "not an LXC container name"),
    ("clone", "a/b", "not an LXC container name"),
    ("clone", "a b", "not an LXC container name"),
    ("template", "--help", "expected a plain word"),
    ("template", {"name": "-h"}, "expected a plain word"),
    ("template", {"name": "busy.box"}, "expected a plain word"),
    ("template", {"name": "busybox", "-x": "1"}, "a template argument is a plain word"),
    ("template", {"name": "busybox", "a.b": "1"}, "a template argument is a plain word"),
    ("template", {"name": "busybox", "release": "a\nb"}, "holds control characters"),
    ("download", {"dist": "--help", "release": "x", "arch": "amd64"},
     "expected a plain word"),
    ("download", {"dist": "debian", "release": "x", "arch": "amd64", "variant": "-v"},
     "expected a plain word"),
    ("download", {"dist": "debian", "release": "a b", "arch": "amd64"},
     "expected a plain word"),
])
def test_bad_value(tmp_path: Path, key: str, value: object, message: str) -> None:
    import json
    found = only_problem(tmp_path, f"""\
        containers:
          web:
            {key}: {json.dumps(value)}
        """)
    assert found.startswith("3: containers.web." + key)
    assert message in found


def test_template_values_may_start_with_a_dash(tmp_path: Path) -> None:
    # they follow `--` on lxc-create's command line, so only the template reads them
    project = load(tmp_path, """\
        containers:
          web:
            template: {name: busybox, offset: "-1"}
        """)
    assert project.container("web").source == TemplateSource("busybox", (("offset", "-1"),))


def test_lower_case_cgroup_keys_load(tmp_path: Path) -> None:
    project = load(tmp_path, """\
        containers:
          web:
            cgroup: ["memory.max=100M", "cpu.shares=512", "memory.limit_in_bytes=2e8"]
        """)
    assert [setting.key for setting in project.container("web").cgroup] == [
        "memory.max", "cpu.shares", "memory.limit_in_bytes"]


def test_more_containers_than_a_24_holds(tmp_path: Path) -> None:
    many = "".join(f"  c{index}: {{}}\n" for index in range(254))
    found = only_problem(tmp_path, "# a project\ncontainers:\n" + many)
    assert found == ("2: containers: 254 containers, but a project's /24 holds at most 253; "
                     "split the project in two")
    fitting = "".join(f"  c{index}: {{}}\n" for index in range(253))
    assert len(load(tmp_path, "containers:\n" + fitting).containers) == 253


def test_one_source_only(tmp_path: Path) -> None:
    found = only_problem(tmp_path, """\
        containers:
          web:
            template: busybox
            clone: db
          db: {}
        """)
    assert found.startswith('4: containers.web.clone: a container has one source and '
                            '"template" is given at line 3')


@pytest.mark.parametrize("yaml_text, expected", [
    ("contaners: {web: {}}\n", '1: contaners: unknown key; did you mean "containers"?'),
    ("version: 3\ncontainers: {web: {}}\n",
     "1: version: unknown key; allowed keys: name, isolated, ipv6, defaults, containers"),
    ("containers:\n  web:\n    link: [db]\n",
     '3: containers.web.link: unknown key; did you mean "links"?'),
    ("defaults:\n  volume: []\ncontainers: {web: {}}\n",
     '2: defaults.volume: unknown key; did you mean "volumes"?'),
    ("defaults:\n  fqdn: a.b\ncontainers: {web: {}}\n",
     "2: defaults.fqdn: an fqdn names one container, so it cannot be a default"),
    ("defaults:\n  clone: a\ncontainers: {web: {}}\n",
     "2: defaults.clone: clone names one container to copy"),
])
def test_unknown_keys_suggest(tmp_path: Path, yaml_text: str, expected: str) -> None:
    assert only_problem(tmp_path, yaml_text).startswith(expected)


def test_duplicate_keys_are_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        containers:
          web:
            ports: ["80:80"]
            ports: ["81:80"]
          web: {}
        """)
    assert found == [
        "4: containers.web.ports: key given twice (first at line 3); keep only one of them",
        "5: containers.web: key given twice (first at line 2); keep only one of them",
    ]


def test_bad_container_name(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        containers:
          web-: {}
          2db: {}
          "a b": {}
          web-1: {}
        """)
    assert [line.split(": not a valid")[0] for line in found] == [
        "2: containers.web-", "3: containers.2db", '4: containers."a b"']


# --- hostile files: limits checked before the file is composed ------------

def hostile(tmp_path: Path, text: str) -> ConfigError:
    """The ConfigError for a file written as is (no dedent)."""
    path = tmp_path / "proj" / "locker.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    assert caught.value.exit_status == 2
    assert all(line.startswith(f"{path}") for line in caught.value.problems)
    return caught.value


def test_deep_nesting_is_refused_without_crashing_the_yaml_loader(tmp_path: Path) -> None:
    """100,000 levels overflow the C stack of libyaml's composer (SIGSEGV):
    loaded in a child process, so that a crash fails only this test."""
    path = tmp_path / "proj" / "locker.yaml"
    path.parent.mkdir()
    path.write_text("containers: " + "[" * 100_000 + "]" * 100_000 + "\n")
    code = ("import sys; from pathlib import Path; from locker.errors import ConfigError\n"
            "from locker.projectfile import load_project\n"
            "try: load_project(Path(sys.argv[1]))\n"
            "except ConfigError as e: print(e.exit_status, *e.problems, sep='\\n')\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"the loader died: {done.returncode} {done.stderr[-300:]}"
    assert done.stdout.splitlines() == [
        "2", f"{path}:1: lists and mappings are nested more than {MAX_DEPTH} deep here; "
             "Locker's files need at most 5 levels, flatten the file"]


def test_nesting_up_to_the_limit_is_only_a_wrong_type(tmp_path: Path) -> None:
    deepest = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert "expected a mapping" in only_problem(tmp_path, f"containers: {deepest}\n")
    too_deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert "nested more than" in only_problem(tmp_path, f"containers: {too_deep}\n")


@pytest.mark.parametrize("line", ["      - 80:80\n", "      - 192.0.2.1:8080:80/udp\n"],
                         ids=["one port", "forwards"])
def test_files_over_the_size_limit_are_not_parsed(tmp_path: Path, line: str) -> None:
    head = "containers:\n  web:\n    ports:\n"
    for size in (MAX_FILE_BYTES + 1, 50 * 1024 * 1024):
        error = hostile(tmp_path, head + line * ((size - len(head)) // len(line) + 1))
        [problem] = error.problems
        assert problem.endswith(f"locker.yaml: the file is larger than {MAX_FILE_BYTES:,} "
                                "bytes (1 MiB), the most Locker reads; is it the right file? "
                                "Locker's project and host files take a few KiB")


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    text = "containers: {web: {}}\n"
    project = load(tmp_path, text + "#" * (MAX_FILE_BYTES - len(text) - 1) + "\n")
    assert project.container_names == ("web",)


def test_an_alias_fanout_counts_every_node_it_repeats(tmp_path: Path) -> None:
    ports = ", ".join(f"{20000 + i}:{i + 1}" for i in range(1000))
    text = f"x-ports: &p [{ports}]\ncontainers:\n" + "".join(
        f"  c{i}: {{template: busybox, ports: *p}}\n" for i in range(250))
    [problem] = hostile(tmp_path, text).problems
    assert f"more than {MAX_NODES:,} keys, values and list items by here" in problem
    assert "aliases count" in problem


def test_billion_laughs_stop_at_the_node_limit(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "\n".join([*lines, "containers: {web: {ports: *a8}}"]) + "\n"
    [problem] = hostile(tmp_path, text).problems
    assert problem.split(":")[1] == "5"  # the first alias that overflows the count
    assert f"more than {MAX_NODES:,}" in problem


def test_defaults_fanning_out_past_the_entry_limit(tmp_path: Path) -> None:
    """The 16 KB file of issue 13: 1,000 default forwards, 250 containers."""
    ports = ", ".join(f"{20000 + i}:{i + 1}" for i in range(1000))
    text = f"defaults:\n  template: busybox\n  ports: [{ports}]\ncontainers:\n" + "".join(
        f"  c{i}: {{}}\n" for i in range(250))
    [problem] = hostile(tmp_path, text).problems
    assert problem.endswith(
        "locker.yaml:4: containers: the containers' lists hold 250,000 entries with the "
        f"defaults given to each container, more than the {MAX_ENTRIES:,} Locker takes; "
        "give fewer forwards, or set lists on the containers that need them instead of in "
        "defaults")


def test_a_default_forward_shared_by_many_is_one_problem(tmp_path: Path) -> None:
    ports = ", ".join(f"{20000 + i}:{i + 1}" for i in range(50))
    text = f"defaults:\n  ports: [{ports}]\ncontainers:\n" + "".join(
        f"  c{i}: {{}}\n" for i in range(250)) + "  own: {ports: ['20000:80']}\n"
    error = hostile(tmp_path, text)
    assert str(error).endswith("has 51 problems.")
    assert error.problems[0].endswith(
        'locker.yaml:2: defaults.ports[0]: "20000:1": defaults give this forward to all '
        "250 containers without ports of their own (c0, c1, ...); move it to one container")
    # the first container taking the defaults has them, for clashes with the others
    assert error.problems[-1].endswith(
        'locker.yaml:254: containers.own.ports[0]: "20000:80": host port 20000/tcp is '
        "already forwarded to container c0 at line 2; use another HOST_PORT")


def test_the_problems_listed_are_capped(tmp_path: Path) -> None:
    bad = ", ".join(f"x{i}" for i in range(MAX_SHOWN + 400))
    error = hostile(tmp_path, f"containers: {{web: {{ports: [{bad}]}}}}\n")
    assert str(error).endswith(f"has {MAX_SHOWN + 400:,} problems.")
    assert len(error.problems) == MAX_SHOWN + 1
    assert error.problems[0].endswith('locker.yaml:1: containers.web.ports[0]: "x0": '
                                      "expected a host and a container port; write "
                                      "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO], for "
                                      "example 8080:80, or a range START-END:START-END, "
                                      "for example 8000-8010:9000-9010")
    assert error.problems[-1].endswith("locker.yaml: ... and 400 more problems; "
                                       "fix these first")


def test_one_port_repeated_is_one_problem_per_repeat_and_capped(tmp_path: Path) -> None:
    text = "containers:\n  web:\n    ports:\n" + "      - 80:80\n" * 5000
    error = hostile(tmp_path, text)
    assert str(error).endswith("has 4,999 problems.")
    assert error.problems[0].endswith('locker.yaml:5: containers.web.ports[1]: "80:80": host '
                                      "port 80/tcp is already forwarded to container web at "
                                      "line 4; use another HOST_PORT")
    assert len(error.problems) == MAX_SHOWN + 1


def test_forwards_on_many_host_addresses_share_a_port(tmp_path: Path) -> None:
    ports = ", ".join(f'"10.0.{i // 250}.{i % 250 + 1}:80:80"' for i in range(2000))
    project = load(tmp_path, f"containers:\n  web: {{ports: [{ports}]}}\n")
    assert len(project.container("web").ports) == 2000
    found = problems(tmp_path, f"containers:\n  web: {{ports: [{ports}]}}\n"
                               "  db: {ports: ['80:80', '10.0.7.250:80:80', '10.0.9.1:80:80']}\n")
    assert found == [
        '3: containers.db.ports[0]: "80:80": host port 80/tcp is already forwarded to container '
        "web at line 2 (a forward without HOST_IP takes the port on every address); use "
        "another HOST_PORT",
        '3: containers.db.ports[1]: "10.0.7.250:80:80": host port 80/tcp is already forwarded '
        "to container web at line 2; use another HOST_PORT",
    ]


def test_one_alias_in_many_containers_clashes_once_per_container(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        containers:
          a: {ports: &p ["8080:80", "8443:443"]}
          b: {ports: *p}
          c: {ports: *p}
        """)
    assert found == [
        f'2: containers.{name}.ports[{i}]: "{port}": a YAML alias gives this forward to more '
        "than one container (a first); give it to one container"
        for i, port in enumerate(("8080:80", "8443:443")) for name in "bc"]


# --- isolated and localhost -----------------------------------------------------

def test_isolated_key(tmp_path: Path) -> None:
    body = "containers:\n  web: {template: busybox}\n"
    assert load(tmp_path, body).isolated is None
    assert load(tmp_path, "isolated: true\n" + body).isolated is True
    assert load(tmp_path, "isolated: FALSE\n" + body).isolated is False


@pytest.mark.parametrize("value", ["maybe", "[true]", "1"])
def test_isolated_must_be_true_or_false(tmp_path: Path, value: str) -> None:
    found = only_problem(tmp_path, f"containers:\n  web: {{template: busybox}}\n"
                                   f"isolated: {value}\n")
    assert found.startswith("3: isolated: "), found


def test_localhost_host_ip_is_127_0_0_1(tmp_path: Path) -> None:
    project = load(tmp_path, 'containers:\n  web:\n    template: busybox\n'
                             '    ports: ["localhost:8080:80", "127.0.0.1:8081:81"]\n')
    assert [p.host_ip for p in project.container("web").ports] == [
        IPv4Address("127.0.0.1"), IPv4Address("127.0.0.1")]
