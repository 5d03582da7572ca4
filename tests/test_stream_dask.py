"""Writing the balanced stream on a Dask cluster: the same bytes as one process, lost workers, bad input.

The cluster tests run a LocalCluster of two worker processes (one thread each), as a small real
cluster would: the tasks are pickled, the images scattered, and a killed worker is restarted by
its nanny. They are skipped, with the reason, where ``dask.distributed`` is not installed
(``pip install "ispad-core[dask]"``).
"""

import inspect
import os
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed", reason='needs the [dask] extra: pip install "ispad-core[dask]"')

from ispad_core.stream import dask as _dask  # noqa: E402
from ispad_core.stream.dask import write_balanced_stream_distributed  # noqa: E402
from ispad_core._shared.files import exclusive_lock  # noqa: E402
from ispad_core.io import open_stream, part_path  # noqa: E402
from ispad_core.samples import screen_print  # noqa: E402
from ispad_core.stream import shard_range, write_balanced_stream  # noqa: E402

SIZE = 48
N = 14
BATCH = 3


@pytest.fixture(scope="module")
def images():
    return [screen_print((110, 120), rng=1, kind="dots"), screen_print((96, 96), rng=2, kind="lines")]


# dashboard_address=":0": the scheduler's HTTP server takes a free port; the default 8787 may be
# taken (another cluster, another test run), and distributed then warns, which fails the test.
@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def whole(tmp_path_factory, images):
    """The file one process writes: what every distributed write must equal byte for byte."""
    out = tmp_path_factory.mktemp("whole") / "whole.h5"
    return write_balanced_stream(out, images, N, size=SIZE, seed=7, batch_size=BATCH, names=["a.png", "b.png"]).path


def _die_once_after_the_first_checkpoint(marker):
    def callback(done, total):
        # runs on a worker: the first part to reach a checkpoint kills its worker process, once
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(1)

    return callback


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


# --------------------------------------------------------------------------- on the cluster


@pytest.mark.parametrize("parts", [1, 3, 5])
def test_distributed_write_equals_one_process_byte_for_byte(tmp_path, images, whole, client, parts):
    out = tmp_path / "stream.h5"
    summary = write_balanced_stream_distributed(
        out, images, N, client=client, parts=parts, size=SIZE, seed=7, batch_size=BATCH, names=["a.png", "b.png"]
    )
    assert out.read_bytes() == whole.read_bytes()
    assert summary.path == out and summary.n_items == N and summary.n_defective == N // 2 and summary.seed == 7
    assert summary.n_resumed == 0 and summary.mean_attempts >= 1
    assert {"extract", "synthesize", "compress", "merge"} <= set(summary.timings)
    assert _leftovers(tmp_path, "stream.h5") == []  # the parts folder and the lock are gone


_HAS_CLIENT = "client" in inspect.signature(write_balanced_stream).parameters


@pytest.mark.skipif(not _HAS_CLIENT, reason="write_balanced_stream has no client= parameter in this version")
def test_write_balanced_stream_with_a_client_delegates_to_the_cluster(tmp_path, images, whole, client):
    out = tmp_path / "stream.h5"
    summary = write_balanced_stream(
        out, images, N, size=SIZE, seed=7, batch_size=BATCH, names=["a.png", "b.png"], client=client, parts=4
    )
    assert out.read_bytes() == whole.read_bytes() and "merge" in summary.timings
    with pytest.raises(ValueError, match="shard: not with client"):
        write_balanced_stream(tmp_path / "x.h5", images, N, size=SIZE, seed=7, client=client, shard=(0, 2))


def _synth_help() -> str:
    import contextlib
    import io

    from ispad_core.cli import build_parser

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
        build_parser().parse_args(["synth", "--help"])
    return buffer.getvalue()


def _cli_has_scheduler() -> bool:
    return "--scheduler" in _synth_help()


@pytest.mark.skipif(not _cli_has_scheduler(), reason="ispad synth has no --scheduler option in this version")
def test_ispad_synth_scheduler_writes_the_same_file(tmp_path, client, capsys):
    from ispad_core.cli import main

    args = ["synth", "--n", "10", "--size", "48", "--seed", "3", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one.h5")]) == 0
    address = client.scheduler.address
    assert main([*args, "--out", str(tmp_path / "cluster.h5"), "--scheduler", address, "--parts", "3"]) == 0
    assert (tmp_path / "cluster.h5").read_bytes() == (tmp_path / "one.h5").read_bytes()
    assert main([*args, "--out", str(tmp_path / "x.h5"), "--parts", "3"]) == 1
    assert main([*args, "--out", str(tmp_path / "x.h5"), "--scheduler", address, "--shard", "0/2"]) == 1
    err = capsys.readouterr().err
    assert "--parts needs --scheduler" in err and "--shard" in err


def test_seed_is_drawn_here_and_recorded(tmp_path, images, client):
    summary = write_balanced_stream_distributed(
        tmp_path / "s.h5", images, 6, client=client, parts=2, size=SIZE, augment=None, preset="dot-dark"
    )
    with open_stream(summary.path) as s:
        assert s.attrs["seed"] == summary.seed and s.attrs["shard"] == "0/1" and len(s) == 6
    again = write_balanced_stream(tmp_path / "one.h5", images, 6, size=SIZE, augment=None, preset="dot-dark", seed=summary.seed)
    assert again.path.read_bytes() == summary.path.read_bytes()


def test_a_worker_killed_mid_part_is_replaced_and_the_file_is_the_same(tmp_path, images, whole, client):
    marker = str(tmp_path / "killed")
    out = tmp_path / "stream.h5"
    summary = write_balanced_stream_distributed(
        out,
        images,
        N,
        client=client,
        parts=2,
        size=SIZE,
        seed=7,
        batch_size=BATCH,
        names=["a.png", "b.png"],
        callback=_die_once_after_the_first_checkpoint(marker),
    )
    assert os.path.exists(marker)  # a worker did die
    assert out.read_bytes() == whole.read_bytes()
    assert summary.n_resumed == BATCH  # the next attempt took over the dead one's checkpoint
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the tests after this one


def test_inputs_lost_with_the_only_worker_are_sent_again(tmp_path, images, whole):
    marker = str(tmp_path / "killed")
    out = tmp_path / "stream.h5"
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=50) as cluster,
        distributed.Client(cluster) as one,
    ):
        scattered = []
        scatter = one.scatter
        one.scatter = lambda *args, **kwargs: scattered.append(1) or scatter(*args, **kwargs)
        summary = write_balanced_stream_distributed(
            out,
            images,
            N,
            client=one,
            parts=2,
            size=SIZE,
            seed=7,
            batch_size=BATCH,
            names=["a.png", "b.png"],
            callback=_die_once_after_the_first_checkpoint(marker),
        )
    assert os.path.exists(marker) and len(scattered) == 2  # sent again after the worker died
    assert out.read_bytes() == whole.read_bytes() and summary.n_resumed == BATCH


def _fail_once_after_the_first_checkpoint(marker):
    def callback(done, total):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        raise OSError("the shared disk went away")  # as a file system error would, with no retries left

    return callback


def test_a_failed_call_keeps_its_parts_and_the_same_call_resumes_them(tmp_path, images, whole, client):
    out = tmp_path / "stream.h5"
    common = dict(client=client, parts=2, size=SIZE, seed=7, batch_size=BATCH, names=["a.png", "b.png"])

    def fail(marker):
        with pytest.raises(OSError, match="went away") as info:
            write_balanced_stream_distributed(
                out, images, N, retries=0, callback=_fail_once_after_the_first_checkpoint(str(tmp_path / marker)), **common
            )
        assert any("parts are kept in" in note for note in info.value.__notes__)
        [folder] = tmp_path.glob(".stream.h5.*.dask")
        assert not out.exists()
        # the other part's task was cancelled, but a started task runs to its end: wait for it
        deadline = time.monotonic() + 60
        while True:
            try:
                _dask._check_no_running_attempts(folder)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the cancelled task did not end"
                time.sleep(0.05)

    fail("first")
    fresh = write_balanced_stream_distributed(out, images, N, resume=False, **common)
    assert fresh.n_resumed == 0 and out.read_bytes() == whole.read_bytes()
    out.unlink()
    fail("second")
    [folder] = tmp_path.glob(".stream.h5.*.dask")
    with exclusive_lock(folder / "part-00000.claim"):  # a task of the failed call that still runs
        with pytest.raises(BlockingIOError, match="still writes its part"):
            write_balanced_stream_distributed(out, images, N, resume=False, **common)
    resumed = write_balanced_stream_distributed(out, images, N, **common)
    assert resumed.n_resumed >= BATCH and out.read_bytes() == whole.read_bytes()
    assert _leftovers(tmp_path, "stream.h5") == ["first", "second"]


def test_an_error_in_a_part_names_the_part_and_is_not_retried(tmp_path, images, client):
    calls = str(tmp_path / "calls")

    def count_and_fail(done, total):
        with open(calls, "a") as fh:
            fh.write("x")
        raise ValueError("callback: refused")

    with pytest.raises(ValueError, match="callback: refused") as info:
        write_balanced_stream_distributed(
            tmp_path / "s.h5", images, 6, client=client, parts=2, size=SIZE, seed=0, callback=count_and_fail
        )
    assert any("in part" in note and "on worker" in note for note in getattr(info.value, "__notes__", []))
    assert 1 <= len(Path(calls).read_text()) <= 2  # once per part at most: never retried
    assert _leftovers(tmp_path, "calls") == []


def test_default_parts_are_four_per_worker_thread_at_most_n(tmp_path, images, client):
    submitted = []
    submit = client.submit
    client.submit = lambda *args, **kwargs: submitted.append(kwargs["k"]) or submit(*args, **kwargs)
    try:
        write_balanced_stream_distributed(tmp_path / "a.h5", images, 20, client=client, size=SIZE, seed=3)
        assert sorted(submitted) == list(range(8))  # 2 workers x 1 thread x 4
        submitted.clear()
        write_balanced_stream_distributed(tmp_path / "b.h5", images, 5, client=client, size=SIZE, seed=3)
        assert sorted(submitted) == list(range(5))
    finally:
        del client.submit  # the instance attribute; the module's client is shared


def test_existing_output_is_refused_before_any_work(tmp_path, images, client):
    out = tmp_path / "s.h5"
    out.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_balanced_stream_distributed(out, images, 6, client=client, parts=2, size=SIZE, seed=0)
    assert out.read_bytes() == b"mine" and _leftovers(tmp_path, "s.h5") == []
    write_balanced_stream_distributed(out, images, 6, client=client, parts=2, size=SIZE, seed=0, overwrite=True)
    with open_stream(out) as s:
        assert len(s) == 6


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"parts": 0}, ValueError, "parts: expected 1 to 6"),
        ({"parts": 7}, ValueError, "parts: expected 1 to 6"),
        ({"parts": 2.0}, TypeError, "parts: expected an int"),
        ({"parts": True}, TypeError, "parts: expected an int"),
        ({"parts": 2, "retries": -1}, ValueError, "retries"),
        ({"parts": 2, "seed": -1}, ValueError, "seed"),
        ({"parts": 2, "shard": (0, 2)}, TypeError, "shard: not accepted.*parts="),
        ({"parts": 2, "resume": "yes"}, TypeError, "resume: expected a bool"),
        ({"parts": 2, "colour": 3}, TypeError, "colour: not a keyword argument of write_balanced_stream"),
        ({"parts": 2, "size": 200}, ValueError, "smaller than the patch size"),
        ({"parts": 2, "preset": "nope"}, ValueError, "preset: expected one of"),
        ({"parts": 2, "rois": [None]}, ValueError, "rois: expected one ROI"),
    ],
)
def test_bad_arguments_are_refused_before_the_cluster_sees_them(tmp_path, images, client, kwargs, error, match):
    with pytest.raises(error, match=match):
        write_balanced_stream_distributed(tmp_path / "s.h5", images, 6, client=client, **{"seed": 0, "size": SIZE, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_workers_that_cannot_answer_are_named_before_any_work(tmp_path, images, client):
    def run(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'ispad_core'")  # as a worker without the library says

    client.run = run
    try:
        with pytest.raises(RuntimeError, match="client: could not ask the workers.*No module named 'ispad_core'"):
            write_balanced_stream_distributed(tmp_path / "s.h5", images, 6, client=client, parts=2, size=SIZE, seed=0)
    finally:
        del client.run  # the instance attribute; the module's client is shared
    assert list(tmp_path.iterdir()) == []


def test_a_second_distributed_write_of_the_same_output_is_refused(tmp_path, images, client):
    out = tmp_path / "s.h5"
    with exclusive_lock(tmp_path / ".s.h5.dask"):  # what a running distributed write of s.h5 holds
        with pytest.raises(BlockingIOError, match="another process is writing"):
            write_balanced_stream_distributed(out, images, 6, client=client, parts=2, size=SIZE, seed=0)
    assert not out.exists()


def test_client_must_be_a_dask_client(tmp_path, images):
    with pytest.raises(TypeError, match="client: expected a dask.distributed.Client, got str"):
        write_balanced_stream_distributed(tmp_path / "s.h5", images, 6, client="tcp://localhost:8786", parts=2)


# --------------------------------------------------------------------------- one task, called directly


def _shard_file(tmp_path, images, k, parts):
    out = tmp_path / f"ref-{k}.h5"
    return write_balanced_stream(out, images, N, size=SIZE, seed=7, batch_size=BATCH, shard=(k, parts)).path


def _task(folder, images, k, parts, seed=7, callback=None):
    from ispad_core.stream import StreamInputs, StreamSpec

    return _dask._write_part(
        StreamInputs(images),
        folder=str(folder),
        k=k,
        parts=parts,
        n=N,
        seed=seed,
        spec=StreamSpec(size=SIZE, batch_size=BATCH),
        callback=callback,
    )


def test_an_attempt_resumes_the_part_a_dead_attempt_left(tmp_path, images):
    folder = tmp_path / "parts"
    folder.mkdir()

    def stop(done, total):
        raise KeyboardInterrupt  # as a dying worker would, after the first checkpoint

    with pytest.raises(KeyboardInterrupt):
        _task(folder, images, 1, 2, callback=stop)
    assert part_path(folder / "part-00001.h5").exists()
    result = _task(folder, images, 1, 2)
    assert isinstance(result, _dask._PartResult) and result.n_resumed == BATCH
    assert Path(result.path) == folder / "part-00001.h5"
    assert Path(result.path).read_bytes() == _shard_file(tmp_path, images, 1, 2).read_bytes()


def test_an_attempt_beside_a_live_one_writes_its_own_file(tmp_path, images):
    folder = tmp_path / "parts"
    folder.mkdir()
    with exclusive_lock(folder / "part-00000.claim"):  # another attempt of part 0 is still running
        result = _task(folder, images, 0, 3)
    assert isinstance(result, _dask._PartResult) and result.n_resumed == 0
    assert Path(result.path).name.startswith("part-00000.attempt-")
    assert Path(result.path).read_bytes() == _shard_file(tmp_path, images, 0, 3).read_bytes()


def test_an_attempt_after_a_finished_one_reports_its_file(tmp_path, images):
    folder = tmp_path / "parts"
    folder.mkdir()
    first = _task(folder, images, 2, 3)
    mtime = os.stat(first.path).st_mtime_ns
    again = _task(folder, images, 2, 3)
    a, b = shard_range(N, (2, 3))
    assert again.path == first.path and again.n_resumed == b - a and os.stat(again.path).st_mtime_ns == mtime


def test_one_part_at_a_time_per_worker_process(tmp_path, images):
    # a worker with several threads must not run two parts' Numba kernels at once
    import threading

    folder = tmp_path / "parts"
    folder.mkdir()
    events = []

    def run(k):
        result = _task(folder, images, k, 2, callback=lambda done, total: events.append(k))
        assert isinstance(result, _dask._PartResult)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(events) == 6 and events in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])


def test_a_worker_that_cannot_see_the_folder_says_so(tmp_path, images):
    result = _task(tmp_path / "elsewhere", images, 0, 2)
    assert isinstance(result, _dask._PartFailure)
    assert isinstance(result.error, FileNotFoundError) and "not visible on worker" in str(result.error)


def test_argument_errors_of_a_part_come_back_as_values_not_raised(tmp_path, images):
    folder = tmp_path / "parts"
    folder.mkdir()
    result = _task(folder, images, 0, 2, seed=-1)  # checked before the cluster sees it, but not by the part's caller here
    assert isinstance(result, _dask._PartFailure) and isinstance(result.error, ValueError)
    assert "seed" in str(result.error)
    assert list(folder.iterdir()) == []


def test_workers_with_other_versions_are_refused():
    here = _dask._environment()
    assert {"ispad_core", "numpy", "numba", "h5py", "zlib"} <= set(here)
    _dask._check_environments(here, {"tcp://a:1": dict(here), "tcp://b:2": dict(here)})
    with pytest.raises(RuntimeError, match=r"client: worker tcp://b:2 runs other versions .*numpy 0.1 there"):
        _dask._check_environments(here, {"tcp://a:1": dict(here), "tcp://b:2": {**here, "numpy": "0.1"}})
