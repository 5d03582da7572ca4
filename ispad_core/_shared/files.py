"""Safe output files: the one atomic-write mechanism and the one writer lock of the library.

Every writer of the library (stream files, PNGs, JSON reports, model files, checkpoints) goes
through :func:`atomic_output`: the data is written to a uniquely named temporary file created
with ``O_CREAT | O_EXCL`` in the target folder (``tempfile.mkstemp``), fsynced, and renamed over
the target with ``os.replace``. A reader therefore sees the old file or the complete new one,
never half of it; an error or an interrupt removes the temporary file; nothing is written through
a symbolic link, and nothing that is not a regular file (a device node, a FIFO, a folder) is ever
replaced. :func:`exclusive_lock` keeps two processes from writing the same output at once; a
forked child (a DataLoader worker) never keeps it. A full disk is reported as
:class:`OutOfSpaceError`, one line naming the file and the free space. What a killed writer left
(its temporary files, recognised by their names) is removed by :func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from ispad_core._shared.errors import InputTypeError, InputValueError

__all__ = [
    "OutOfSpaceError",
    "OutputBusyError",
    "atomic_output",
    "check_output_path",
    "exclusive_lock",
    "fsync_dir",
    "hash_file",
    "remove_stale_temporaries",
]


class OutputBusyError(BlockingIOError):
    """Another process holds the writer lock of an output file."""


class OutOfSpaceError(OSError):
    """The disk (or the user's quota) filled up while an output file was written; the old file is kept."""

    def __str__(self) -> str:
        return str(self.strerror)


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _size_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


#: Free bytes under which a write that failed without an errno (torch.save to a path raises a
#: RuntimeError from its C++ writer) is taken for a full disk.
_NEARLY_FULL = 1 << 20


def _free_bytes(folder: str | os.PathLike) -> int | None:
    try:
        return shutil.disk_usage(os.fspath(folder)).free
    except OSError:  # pragma: no cover - a folder gone meanwhile
        return None


def out_of_space(
    exc: BaseException, path: str | os.PathLike, name: str, *, kept: bool, free: int | None
) -> OutOfSpaceError | None:
    """An :class:`OutOfSpaceError` for ``exc`` if it is a full disk, else None.

    A full disk is an ``OSError`` with ``ENOSPC`` or ``EDQUOT`` (or one that ``exc`` was raised
    from), or a ``RuntimeError`` of a writer that hides the errno (torch's C++ file writer) when
    ``free`` (measured at the failure, before anything was cleaned up) is under 1 MiB. The message
    is one line: the argument, the file, the free space, and whether an older file is kept.
    """
    code = None
    cause, seen = exc, 0
    while cause is not None and seen < 8:
        if isinstance(cause, OutOfSpaceError):
            return cause
        if isinstance(cause, OSError) and cause.errno in _FULL:
            code = cause.errno
            break
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    if code is None:
        if not (isinstance(exc, RuntimeError) and free is not None and free < _NEARLY_FULL):
            return None
        code = errno.ENOSPC
    p = Path(os.fspath(path))
    room = "free space unknown" if free is None else f"{_size_text(free)} free on its file system"
    what = "the disk is full" if code == errno.ENOSPC else "the disk quota is used up"
    old = f"the old {p.name} is kept" if kept else "nothing was written"
    return OutOfSpaceError(code, f"{name}: {what} while writing {p} ({room}); {old}")


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_path(path: str | os.PathLike, name: str, *, overwrite: bool) -> Path:
    """Check that ``path`` may be written: its folder exists and nothing unsafe is in the way.

    Parameters
    ----------
    path : path-like
        The output file.
    name : str
        The argument's name, for error messages.
    overwrite : bool
        Whether an existing regular file may be replaced.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist.
    FileExistsError
        If ``path`` is an existing regular file and ``overwrite`` is False.
    ValueError
        If ``path`` is a symbolic link or exists and is not a regular file (a folder, a device
        node, a FIFO, a socket); these are refused with or without ``overwrite``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"{name}: expected a file path, got {type(path).__name__}")
    p = Path(os.fspath(path))
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise FileNotFoundError(f"{name}: the folder {parent} of {p} does not exist") from None
        return p
    if stat.S_ISLNK(st.st_mode):
        raise InputValueError(f"{name}: {p} is a symbolic link; refusing to write through it (remove the link first)")
    if not stat.S_ISREG(st.st_mode):
        raise InputValueError(
            f"{name}: {p} exists and is not a regular file (a folder, device, FIFO or socket); refusing to replace it"
        )
    if not overwrite:
        raise FileExistsError(f"{name}: {p} exists; ask for overwrite (--overwrite) to replace it")
    return p


def hash_file(digest, path: str | os.PathLike) -> None:
    """Feed the bytes of the file at ``path`` to ``digest`` (a :mod:`hashlib` object), 1 MiB at a time.

    >>> import hashlib, os, tempfile
    >>> fd, name = tempfile.mkstemp(); _ = os.write(fd, b"abc"); os.close(fd)
    >>> h = hashlib.sha256(); hash_file(h, name); os.remove(name)
    >>> h.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    True
    """
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a folder so that a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, *, name: str = "path", overwrite: bool = False, suffix: str = ".part"
) -> Iterator[Path]:
    """Write a file atomically: yield a fresh temporary path, rename it to ``path`` on success.

    The temporary file is created empty (mode 0600) beside ``path`` with a unique name
    (``.<name>.<random><suffix>``); the caller writes to it by path (``torch.save``, ``h5py``,
    ``open(tmp, "wb")``). When the ``with`` block ends without an exception the file is fsynced,
    given the permissions of a normally created file (0666 less the umask), the target is checked
    again and the file is renamed over it. On any exception (KeyboardInterrupt included) the
    temporary file is removed and the target is left as it was.

    Parameters
    ----------
    path : path-like
        The final file.
    name : str, default "path"
        The argument's name, for error messages.
    overwrite : bool, default False
        Whether an existing regular file at ``path`` may be replaced.
    suffix : str, default ".part"
        Suffix of the temporary file.

    Yields
    ------
    pathlib.Path
        The temporary file to write.

    Raises
    ------
    FileNotFoundError, FileExistsError, ValueError
        As :func:`check_output_path`, before anything is written and again before the rename.
    OutOfSpaceError
        If the disk or the quota fills up (an ``OSError`` with ``ENOSPC`` or ``EDQUOT``, raised
        by the block or by the fsync, or a ``RuntimeError`` of a writer that hides the errno while
        under 1 MiB is free): one line naming the file and the free space.

    Examples
    --------
    >>> import os, tempfile
    >>> from ispad_core._shared.files import atomic_output
    >>> folder = tempfile.mkdtemp()
    >>> with atomic_output(os.path.join(folder, "a.txt")) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> sorted(os.listdir(folder))
    ['a.txt']
    """
    target = check_output_path(path, name, overwrite=overwrite)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=parent)
    except OSError as exc:
        full = out_of_space(exc, target, name, kept=os.path.lexists(target), free=_free_bytes(parent))
        if full is None:
            raise
        raise full from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        check_output_path(target, name, overwrite=overwrite)
        os.replace(tmp, target)
    except BaseException as exc:
        free = _free_bytes(parent) if isinstance(exc, (OSError, RuntimeError)) else None  # before the cleanup frees room
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        full = out_of_space(exc, target, name, kept=os.path.lexists(target), free=free)
        if full is None or full is exc:
            raise
        raise full from None
    fsync_dir(parent)


# The descriptors of the locks this process holds. A forked child (a DataLoader worker started
# by fork) gets copies that share the lock with its parent (an flock lock belongs to the open file
# description, and O_CLOEXEC acts on exec, not on fork): the child closes its copies at once, so
# an orphaned child never keeps an output locked after its parent died. Closing a copy in the
# child drops only the child's reference; the parent's lock stays.
_held_locks: set[int] = set()
_held_guard = threading.Lock()


def _forget_locks_in_child() -> None:
    global _held_guard
    _held_guard = threading.Lock()  # another thread may have held it at the fork: a fresh one
    for fd in tuple(_held_locks):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held_locks.clear()


if hasattr(os, "register_at_fork"):
    # a fork waits while another thread opens a lock file, so no descriptor escapes the registry
    os.register_at_fork(
        before=lambda: _held_guard.acquire(),
        after_in_parent=lambda: _held_guard.release(),
        after_in_child=_forget_locks_in_child,
    )


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, *, name: str = "path", lock: str | os.PathLike | None = None) -> Iterator[Path]:
    """Hold the writer lock of ``path`` (an OS lock on ``path + ".lock"``) for the ``with`` block.

    A second process (or a second lock in this process) asking for the same lock fails at once
    with :class:`OutputBusyError`, which names the file. The lock is released, and its file
    removed, when the block ends or the process dies (the OS drops ``flock`` locks of a dead
    process, so a crash never leaves a stale lock behind, only at most an empty lock file).
    A child forked while the lock is held does not hold it: it closes its inherited copy at
    once, and leaving the block in the child neither releases nor removes the parent's lock.

    Parameters
    ----------
    path : path-like
        The output (a file, or a folder that one run fills), named in the messages.
    name : str, default "path"
        The argument's name, for error messages.
    lock : path-like, optional
        The lock file; default ``path + ".lock"`` beside ``path``.

    Raises
    ------
    OutputBusyError
        If another writer holds the lock.
    ValueError
        If the lock path is a symbolic link or not a regular file.
    """
    target = Path(os.fspath(path))
    lock = target.with_name(target.name + ".lock") if lock is None else Path(os.fspath(lock))
    owner = os.getpid()
    while True:
        try:
            with _held_guard:  # registered before the lock is taken: a fork from now on drops it
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                _held_locks.add(fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputValueError(f"{name}: the lock file {lock} is a symbolic link; refusing to use it") from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InputValueError(f"{name}: the lock file {lock} is not a regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputBusyError(
                    f"{name}: another process is writing {target} (it holds {lock}); wait for it to "
                    "finish or choose another output"
                ) from None
            # the holder before us may have removed the lock file after we opened it: make sure the
            # lock we hold is on the file that is at the path now
            try:
                same = os.path.samestat(os.fstat(fd), os.lstat(lock))
            except FileNotFoundError:
                same = False
        except BaseException:
            _release(fd)
            raise
        if same:
            break
        _release(fd)
    try:
        yield lock
    finally:
        if os.getpid() == owner:  # a forked child leaving the block: the lock is its parent's
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            _release(fd)


def _release(fd: int) -> None:
    with _held_guard:
        _held_locks.discard(fd)
    os.close(fd)


# --------------------------------------------------------------------------- what a killed writer left

#: ``tempfile.mkstemp``'s random part: 8 characters of this alphabet.
_RANDOM = "[a-z0-9_]{8}"


def remove_stale_temporaries(
    folder: str | os.PathLike, *, names: str, suffix: str = ".part"
) -> list[Path]:
    """Remove the temporary files that a killed :func:`atomic_output` left in ``folder``.

    Only files the library can recognise as its own are removed: regular files (not links) of
    this user whose name is exactly what :func:`atomic_output` creates for an output whose name
    matches ``names`` (``.<output name>.<8 random characters><suffix>``). The caller must hold
    the writer lock of those outputs, so that no running writer's temporary file is taken.

    Parameters
    ----------
    folder : path-like
        The output folder.
    names : str
        A regular expression that the output file names must match in full, e.g. ``r".+\\.json"``.
    suffix : str, default ".part"
        The suffix the temporary files were created with.

    Returns
    -------
    list of pathlib.Path
        The files removed, in name order.
    """
    folder = Path(os.fspath(folder))
    pattern = re.compile(rf"\.(?:{names})\.{_RANDOM}{re.escape(suffix)}")
    removed = []
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        entries = sorted(os.listdir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry):
            continue
        p = folder / entry
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode) or (uid is not None and st.st_uid != uid):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
            removed.append(p)
    return removed
