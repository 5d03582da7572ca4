"""The one atomic-write helper and the writer lock (ispad_core._shared.files)."""

import os
import stat
import subprocess
import sys

import pytest

from ispad_core._shared.files import OutputBusyError, atomic_output, check_output_path, exclusive_lock


def test_atomic_output_writes_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"abc")
        assert not target.exists()
    assert target.read_bytes() == b"abc"
    assert os.listdir(tmp_path) == ["out.bin"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~current_umask()


def current_umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_atomic_output_error_removes_temporary_and_keeps_old(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyError):
        with atomic_output(target, overwrite=True) as tmp:
            tmp.write_bytes(b"new")
            raise KeyError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_existing_file_needs_overwrite(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="out.bin exists"):
        with atomic_output(target, name="out"):
            pass
    assert target.read_bytes() == b"old"


@pytest.mark.parametrize("overwrite", [False, True])
def test_refuses_symlink_fifo_and_folder(tmp_path, overwrite):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "link"
    link.symlink_to(victim)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ValueError, match="symbolic link"):
        check_output_path(link, "out", overwrite=overwrite)
    for p in (fifo, folder):
        with pytest.raises(ValueError, match="not a regular file"):
            with atomic_output(p, name="out", overwrite=overwrite):
                pass
    assert victim.read_bytes() == b"keep"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        check_output_path(tmp_path / "nowhere" / "x", "out", overwrite=False)


def test_lock_refuses_second_writer_in_another_process(tmp_path):
    target = tmp_path / "s.h5"
    code = (
        "import sys\nfrom ispad_core._shared.files import exclusive_lock, OutputBusyError\n"
        f"try:\n    with exclusive_lock({str(target)!r}, name='out'):\n        pass\n"
        "except OutputBusyError as e:\n    print(e); sys.exit(3)\n"
    )
    with exclusive_lock(target, name="out") as lock:
        assert lock.exists()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 3, proc.stderr
        assert "another process is writing" in proc.stdout and "s.h5" in proc.stdout
        with pytest.raises(OutputBusyError):
            with exclusive_lock(target):
                pass
    assert not lock.exists()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lock_refuses_symlinked_lock_file(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "s.h5.lock").symlink_to(victim)
    with pytest.raises(ValueError, match="symbolic link"):
        with exclusive_lock(tmp_path / "s.h5"):
            pass
    assert victim.read_bytes() == b"keep"
