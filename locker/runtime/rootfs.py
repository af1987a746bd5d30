"""Files inside a container's root file system, seen from the host.

The container owns its root file system and may change it at any moment,
also while Locker works on it (``links`` rewrites ``/etc/hosts`` of running
containers). So a path is never resolved first and opened by name after:
every file is reached from a descriptor of the rootfs directory in one
step that the container cannot redirect.

- Paths are resolved the way the container sees them: an absolute symlink
  points inside the rootfs, ``..`` stops at its top. ``openat2(2)`` with
  ``RESOLVE_IN_ROOT`` does it in the kernel (Linux 5.6+); where that is
  missing, a walk opens one component at a time with ``O_NOFOLLOW`` below
  the previous one's descriptor, and follows symlinks itself, within the
  rootfs. A requested path must be absolute and without ``..``.
- A file is read only when it is a regular file, checked on the opened
  descriptor (``O_PATH``, so that no device or FIFO is ever opened), and
  at most ``MAX_FILE_BYTES`` of it.
- A file is written as a temporary file in the directory it belongs to,
  renamed over it, both through that directory's descriptor. A symlink in
  its place (``/etc/resolv.conf`` -> ``/run/systemd/resolve/...``) is
  replaced by the file, never followed.

What the container did that Locker will not go along with is a
``ContainerFileRefused``, naming the container and the file, so that the
caller can skip that container and go on with the others.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from locker.errors import LockerError

#: The most Locker reads of one file in a container (its ``/etc/hosts``,
#: ``/etc/init.d/rcS``): real ones are a few KiB.
MAX_FILE_BYTES = 1 << 20
_MAX_SYMLINKS = 40
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}.get(platform.machine())
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_UDHCPC_LINE = re.compile(r"^(\s*)(?!#)((?:\S*/)?udhcpc\b.*)$")
_UDHCPC_NOTE = "# disabled by Locker, the address is static (lxc.net.0.ipv4.address): "


class ContainerFileRefused(LockerError):
    """A file in a container's root file system that Locker will not read
    or write: not a regular file, too large, not text, or behind a loop of
    symlinks. Only that container's file is affected."""

    def __init__(self, container: str, path: str, reason: str) -> None:
        super().__init__(f"Container {container}: Locker refuses its {path}: {reason}. "
                         f"Make {path} a regular text file inside the container "
                         "(or remove it), then run the command again.")
        self.container = container
        self.path = path
        self.reason = reason


def read_text(root: str | Path, path: str, *, container: str) -> str | None:
    """The text of the file ``path`` (absolute, as the container sees it)
    in the rootfs ``root`` of ``container``; None if it or a directory
    above it is missing. Raises ContainerFileRefused for anything but a
    regular UTF-8 file of at most MAX_FILE_BYTES."""
    parts = _parts(path)
    try:
        with _root_descriptor(root, container) as root_fd:
            fd = _open_in_root(root_fd, parts, directory=False)
        try:
            data = _read_regular(fd, container, path)
        finally:
            os.close(fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise _failure(err, container, path, "read") from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ContainerFileRefused(container, path, f"it is not UTF-8 text ({err.reason} "
                                   f"at byte {err.start})") from None


def write_text(root: str | Path, path: str, text: str, *, container: str) -> None:
    """Replace the file ``path`` in the rootfs ``root`` of ``container``
    atomically, keeping the mode and owner of the regular file it replaces
    (0644 for a new file or one that was a symlink, owned by root or by
    the symlink's owner). Its directory must exist."""
    parts = _parts(path)
    if not parts:
        raise LockerError(f"Refusing container path {path!r}: it names no file.")
    try:
        with _root_descriptor(root, container) as root_fd:
            dir_fd = _open_in_root(root_fd, parts[:-1], directory=True)
    except (FileNotFoundError, NotADirectoryError):
        raise LockerError(f"Cannot write {path} in container {container}: its directory "
                          "does not exist.") from None
    except OSError as err:
        raise _failure(err, container, path, "write") from err
    try:
        _replace(dir_fd, parts[-1], text.encode("utf-8"), container, path)
    except OSError as err:
        raise _failure(err, container, path, "write") from err
    finally:
        os.close(dir_fd)


def _parts(path: str) -> list[str]:
    if not path.startswith("/") or ".." in path.split("/") or "\0" in path:
        raise LockerError(f"Refusing container path {path!r}: it must be absolute "
                          "and must not contain '..'.")
    return [part for part in path.split("/") if part not in ("", ".")]


@contextmanager
def _root_descriptor(root: str | Path, container: str) -> Iterator[int]:
    try:
        fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise LockerError(f"Cannot open the root file system {root} of container "
                          f"{container}: {err.strerror}.") from err
    try:
        yield fd
    finally:
        os.close(fd)


def _failure(err: OSError, container: str, path: str, verb: str) -> LockerError:
    if err.errno == errno.ELOOP:
        return ContainerFileRefused(container, path, "a symlink on the way loops or "
                                    f"there are more than {_MAX_SYMLINKS} of them")
    return LockerError(f"Cannot {verb} {path} in container {container}: "
                       f"{err.strerror or err}.")


# -- resolving in the rootfs ----------------------------------------------------

_openat2_usable: bool | None = None  # None: not tried yet


def _open_in_root(root_fd: int, parts: list[str], directory: bool) -> int:
    """An ``O_PATH`` descriptor of ``parts`` below ``root_fd``, symlinks
    resolved inside it (the last one too). Raises OSError."""
    flags = os.O_PATH | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0)
    if _can_openat2():
        return _openat2(root_fd, "/".join(parts) or ".", flags,
                        _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    return _walk(root_fd, parts, directory)


def _can_openat2() -> bool:
    global _openat2_usable
    if _openat2_usable is None:
        try:
            os.close(_openat2(-100, "/", os.O_PATH | os.O_CLOEXEC, 0))  # -100: AT_FDCWD
            _openat2_usable = True
        except OSError:  # an older kernel (ENOSYS), a seccomp filter (EPERM)
            _openat2_usable = False
    return _openat2_usable


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


def _openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    if _SYS_OPENAT2 is None:
        raise OSError(errno.ENOSYS, "openat2 is not known on this architecture")
    how = _OpenHow(flags, 0, resolve)
    while True:
        fd = _libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how),
                           ctypes.sizeof(how))
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        if code not in (errno.EINTR, errno.EAGAIN):
            raise OSError(code, os.strerror(code), path)


def _walk(root_fd: int, parts: list[str], directory: bool) -> int:
    """``_open_in_root`` without openat2: one component at a time, each
    opened ``O_NOFOLLOW`` below the descriptor of the one before; a
    symlink's target is walked the same way, from the rootfs for an
    absolute one, and ``..`` stops at the rootfs."""
    dirs = [os.dup(root_fd)]  # the directories walked so far, the rootfs first
    todo = list(parts)
    links = 0
    try:
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if len(dirs) > 1:
                    os.close(dirs.pop())
                continue
            fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirs[-1])
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                os.close(fd)
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), part)
                # if the name changed since the open, this is another path
                # inside the rootfs, walked like any other
                target = os.readlink(part, dir_fd=dirs[-1])
                if target.startswith("/"):
                    while len(dirs) > 1:
                        os.close(dirs.pop())
                todo = target.split("/") + todo
            elif stat.S_ISDIR(mode):
                dirs.append(fd)
            elif todo or directory:
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), part)
            else:
                return fd
        return os.dup(dirs[-1])
    finally:
        for fd in dirs:
            os.close(fd)


# -- reading and writing through descriptors -----------------------------------

def _read_regular(path_fd: int, container: str, path: str) -> bytes:
    """At most MAX_FILE_BYTES of the regular file behind the ``O_PATH``
    descriptor. The file is opened for reading only once it is known to
    be a regular file, through ``/proc/self/fd`` (the same inode, not the
    name again)."""
    found = os.fstat(path_fd)
    _check_regular(found, container, path)
    try:
        fd = os.open(f"/proc/self/fd/{path_fd}",
                     os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:  # not the container's file missing: /proc is
        raise LockerError(f"Cannot read {path} in container {container}: Locker needs "
                          "/proc mounted to open it safely.") from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino):
            raise ContainerFileRefused(container, path, "it changed while it was opened")
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > MAX_FILE_BYTES:
        raise ContainerFileRefused(container, path, _too_large())
    return b"".join(chunks)


def _check_regular(found: os.stat_result, container: str, path: str) -> None:
    if not stat.S_ISREG(found.st_mode):
        raise ContainerFileRefused(container, path, f"it is {_kind(found.st_mode)}, "
                                   "not a regular file")
    if found.st_size > MAX_FILE_BYTES:
        raise ContainerFileRefused(container, path, _too_large(found.st_size))


def _too_large(size: int | None = None) -> str:
    given = f" ({size:,} bytes)" if size is not None else ""
    return f"it is larger than {MAX_FILE_BYTES:,} bytes{given}"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a file"


def _replace(dir_fd: int, name: str, data: bytes, container: str, path: str) -> None:
    """A temporary file in the directory, renamed over ``name``; both
    calls relative to the directory's descriptor, so neither can be sent
    elsewhere, and a symlink at ``name`` is replaced, not followed."""
    try:
        old = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        old = None
    mode, owner = 0o644, None
    if old is not None and stat.S_ISREG(old.st_mode):
        mode, owner = old.st_mode & 0o7777, (old.st_uid, old.st_gid)
    elif old is not None and stat.S_ISLNK(old.st_mode):
        owner = (old.st_uid, old.st_gid)
    elif old is not None:
        raise ContainerFileRefused(container, path, f"it is {_kind(old.st_mode)}, "
                                   "not a regular file")
    tmp = f".{name}.locker-{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        raise


# -- host files -------------------------------------------------------------------

def atomic_write(target: Path, text: str, mode: int = 0o644,
                 uid: int | None = None, gid: int | None = None) -> None:
    """Write ``text`` to a temporary file beside the host file ``target``
    (a container's LXC config, which only the host writes) and rename it
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
