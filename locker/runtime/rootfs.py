"""Files inside a container's root file system, seen from the host.

Paths are resolved the way the container sees them: an absolute symlink in
the rootfs points inside the rootfs, not at the host's file of that name.
A path that tries to leave the rootfs (``..`` in the requested path, or a
symlink climbing above the rootfs) is refused.

What remains: a process inside a *running* container could swap a
directory for a symlink between the resolution and the open. Locker only
writes a few well-known files (``/etc/hosts``, ``/etc/hostname``, ...),
mostly while the container is stopped.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from locker.errors import LockerError

_MAX_SYMLINKS = 40
_UDHCPC_LINE = re.compile(r"^(\s*)(?!#)((?:\S*/)?udhcpc\b.*)$")
_UDHCPC_NOTE = "# disabled by Locker, the address is static (lxc.net.0.ipv4.address): "


def resolve(root: str | Path, path: str) -> Path:
    """The host path of ``path`` (absolute, as the container sees it)
    inside ``root``, with every symlink resolved within ``root``.

    The result need not exist. Raises LockerError when ``path`` is not
    absolute, contains ``..``, or a symlink leads out of ``root``.
    """
    if not path.startswith("/") or ".." in path.split("/"):
        raise LockerError(f"Refusing container path {path!r}: it must be absolute "
                          "and must not contain '..'.")
    root = Path(root)
    todo = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if not done:
                raise LockerError(f"Refusing container path {path!r}: a symlink on "
                                  "it leads out of the container's root file system.")
            done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if not candidate.is_symlink():
            done.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise LockerError(f"Container path {path!r}: too many levels of symlinks.")
        target = os.readlink(candidate)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p not in ("", ".")] + todo
    return root.joinpath(*done)


def read_text(root: str | Path, path: str) -> str | None:
    """The file's text, None if it (or a directory above it) is missing."""
    try:
        return resolve(root, path).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise LockerError(f"Cannot read {path} in the container: {err}.") from err


def write_text(root: str | Path, path: str, text: str) -> None:
    """Replace the file atomically (temporary file, then rename), keeping
    the mode and owner of the file it replaces (0644, root for a new one).
    The directory must exist."""
    target = resolve(root, path)
    try:
        old = target.stat()
        mode, uid, gid = old.st_mode & 0o7777, old.st_uid, old.st_gid
    except FileNotFoundError:
        mode, uid, gid = 0o644, None, None
    try:
        atomic_write(target, text, mode, uid, gid)
    except OSError as err:
        raise LockerError(f"Cannot write {path} in the container: {err}.") from err


def atomic_write(target: Path, text: str, mode: int = 0o644,
                 uid: int | None = None, gid: int | None = None) -> None:
    """Write ``text`` to a temporary file beside ``target`` and rename it
    over ``target``."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.locker-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if uid is not None and gid is not None:
            os.chown(tmp, uid, gid)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def without_dhcp_client(init_script: str) -> str | None:
    """``init_script`` with every line that runs ``udhcpc`` commented out,
    or None when there is none (already disabled, or not a busybox-style
    init script).

    LXC's busybox template ends ``/etc/init.d/rcS`` with ``/bin/udhcpc``.
    udhcpc starts by flushing eth0's addresses, so it drops the static
    address LXC configured, and then loops in the foreground asking for a
    lease no one gives (Locker's bridges run no DHCP server), which also
    keeps ``rcS`` from ever finishing. Turning the line off in the rootfs
    survives restarts and leaves LXC's static configuration in charge.
    """
    lines = init_script.splitlines(keepends=True)
    changed = False
    for i, line in enumerate(lines):
        m = _UDHCPC_LINE.match(line.rstrip("\n"))
        if m:
            lines[i] = f"{m.group(1)}{_UDHCPC_NOTE}{m.group(2)}\n"
            changed = True
    return "".join(lines) if changed else None
