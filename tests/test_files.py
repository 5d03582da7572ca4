"""The one atomic-write helper and the writer lock (ispad_core._shared.files)."""

import os
import stat
import subprocess
import sys

import numpy as np
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


# --------------------------------------------------------------------------- the lock and fork

HOLDER_THAT_FORKS = """
import os, signal, sys, time
from ispad_core._shared.files import exclusive_lock
with exclusive_lock({target!r}, name="out"):
    pid = os.fork()
    if pid == 0:  # a forked child, like a DataLoader worker: outlives its parent
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)  # let the test's pipes close when the parent dies
        time.sleep(60)
        os._exit(0)
    print(pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the parent dies without cleanup (kill -9)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_keep_the_lock_of_its_dead_parent(tmp_path):
    # flock locks belong to the open file description, which fork shares: an orphaned child
    # still holding it kept `ispad train --resume` out for seconds after a kill -9
    target = tmp_path / "m.pt"
    proc = subprocess.run([sys.executable, "-c", HOLDER_THAT_FORKS.format(target=str(target))],
                          capture_output=True, text=True, timeout=60)
    child = int(proc.stdout.split()[0])
    try:
        os.kill(child, 0)  # the child is still alive
        with exclusive_lock(target, name="out"):
            pass
    finally:
        os.kill(child, 9)


CHILD_LEAVES_THE_BLOCK = """
import os, sys
from ispad_core._shared.files import exclusive_lock
with exclusive_lock({target!r}, name="out") as lock:
    pid = os.fork()
    if pid != 0:
        os.waitpid(pid, 0)
        print(lock.exists(), flush=True)
        import subprocess
        code = "from ispad_core._shared.files import exclusive_lock, OutputBusyError\\n" \\
               "try:\\n    with exclusive_lock({target!r}): print('got it')\\n" \\
               "except OutputBusyError: print('busy')"
        print(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip(), flush=True)
if pid == 0:
    os._exit(0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_leaving_the_block_leaves_the_parents_lock_alone(tmp_path):
    target = tmp_path / "m.pt"
    proc = subprocess.run([sys.executable, "-c", CHILD_LEAVES_THE_BLOCK.format(target=str(target))],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["True", "busy"], proc.stdout + proc.stderr


# --------------------------------------------------------------------------- a full disk


def test_a_full_disk_is_one_line_naming_the_file_and_the_free_space(tmp_path, monkeypatch):
    import errno

    from ispad_core._shared.files import OutOfSpaceError

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(target), "write_bytes", full)
    with pytest.raises(OutOfSpaceError) as info:
        with atomic_output(target, name="out", overwrite=True) as tmp:
            tmp.write_bytes(b"new")
    message = str(info.value)
    assert "\n" not in message and str(target) in message and "free" in message and "B free" in message
    assert message.startswith("out: ") and info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


# --------------------------------------------------------------------------- what a killed writer left


def test_stale_temporaries_of_a_killed_writer_are_recognised_and_nothing_else(tmp_path):
    from ispad_core._shared.files import remove_stale_temporaries

    target = tmp_path / "a.json"
    ours = [tmp_path / ".a.json.k3_x9abz.part", tmp_path / ".summary.csv.abcdefgh.part"]
    theirs = [tmp_path / ".a.json.part", tmp_path / "a.json.k3_x9abz.part", tmp_path / ".a.json.K3X9ABZQ.part",
              tmp_path / ".a.json.abcdefghi.part", tmp_path / ".b.txt.abcdefgh.part", tmp_path / "notes.part"]
    for p in ours + theirs:
        p.write_text("x")
    (tmp_path / ".c.json.abcdefgh.part").symlink_to(tmp_path / "notes.part")
    removed = remove_stale_temporaries(tmp_path, names=r".+\.json|summary\.csv")
    assert sorted(removed) == sorted(ours)
    assert all(p.exists() for p in theirs) and not any(p.exists() for p in ours)
    assert (tmp_path / ".c.json.abcdefgh.part").is_symlink()
    # a real temporary of atomic_output matches
    fd_dir = tmp_path / "sub"
    fd_dir.mkdir()
    with atomic_output(fd_dir / "a.json") as tmp:
        tmp.write_text("{}")
        left = fd_dir / tmp.name  # the name a kill -9 at this point would leave behind
    left.write_text("{}")
    assert remove_stale_temporaries(fd_dir, names=r"a\.json") == [left]
    assert os.listdir(fd_dir) == ["a.json"]


def test_a_writer_that_hides_the_errno_on_a_full_disk_is_reported_as_one(tmp_path, monkeypatch):
    # torch.save to a path raises a RuntimeError from its C++ writer on a full disk
    import shutil

    from ispad_core._shared import files as _files

    target = tmp_path / "model.pt"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(_files.shutil, "disk_usage", lambda p: usage._replace(free=4096))
    with pytest.raises(_files.OutOfSpaceError, match=r"path: the disk is full while writing .*model.pt \(4.1 KB free"):
        with atomic_output(target):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(_files.shutil, "disk_usage", lambda p: usage._replace(free=10 << 20))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # room on the disk: not a full disk
        with atomic_output(target):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


def test_hash_file_feeds_the_whole_file_across_blocks(tmp_path):
    import hashlib

    from ispad_core._shared.files import hash_file

    data = np.random.default_rng(0).integers(0, 256, (1 << 20) + 12345, dtype=np.uint8).tobytes()
    path = tmp_path / "blob"
    path.write_bytes(data)
    h = hashlib.sha256(b"prefix")
    hash_file(h, path)
    assert h.hexdigest() == hashlib.sha256(b"prefix" + data).hexdigest()
    with pytest.raises(FileNotFoundError):
        hash_file(hashlib.sha256(), tmp_path / "absent")
