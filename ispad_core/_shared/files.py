"""Safe output files: the one atomic-write mechanism and the one writer lock of the library.

Every writer of the library (stream files, PNGs, JSON reports, model files, checkpoints) goes
through :func:`atomic_output`: the data is written to a uniquely named temporary file created
with ``O_CREAT | O_EXCL`` in the target folder (``tempfile.mkstemp``), fsynced, and renamed over
the target with ``os.replace``. A reader therefore sees the old file or the complete new one,
never half of it; an error or an interrupt removes the temporary file; nothing is written through
a symbolic link, and nothing that is not a regular file (a device node, a FIFO, a folder) is ever
replaced. :func:`exclusive_lock` keeps two processes from writing the same output at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ispad_core._shared.errors import InputTypeError, InputValueError

__all__ = ["OutputBusyError", "atomic_output", "check_output_path", "exclusive_lock", "fsync_dir"]


class OutputBusyError(BlockingIOError):
    """Another process holds the writer lock of an output file."""


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        check_output_path(target, name, overwrite=overwrite)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(parent)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, *, name: str = "path") -> Iterator[Path]:
    """Hold the writer lock of ``path`` (an OS lock on ``path + ".lock"``) for the ``with`` block.

    A second process (or a second lock in this process) asking for the same lock fails at once
    with :class:`OutputBusyError`, which names the file. The lock is released, and its file
    removed, when the block ends or the process dies (the OS drops ``flock`` locks of a dead
    process, so a crash never leaves a stale lock behind, only at most an empty lock file).

    Raises
    ------
    OutputBusyError
        If another writer holds the lock.
    ValueError
        If the lock path is a symbolic link or not a regular file.
    """
    target = Path(os.fspath(path))
    lock = target.with_name(target.name + ".lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputValueError(f"{name}: the lock file {lock} is a symbolic link; refusing to use it") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InputValueError(f"{name}: the lock file {lock} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
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
        if same:
            break
        os.close(fd)
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)
