"""Writing the stream on a Dask cluster: the same bytes as one process, and a killed worker changes nothing."""

import os
import signal
import threading
import time

import pytest

from ispad_core.samples import screen_print
from ispad_core.stream import cluster_part_path, write_balanced_stream

distributed = pytest.importorskip("distributed")

SIZE = 48


@pytest.fixture(scope="module")
def images():
    return [screen_print((120, 130), rng=1, kind="dots"), screen_print((110, 110), rng=2, kind="lines")]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def test_cluster_writes_the_file_one_process_writes(tmp_path, images, client):
    common = dict(size=SIZE, seed=5, batch_size=4, names=["a.png", "b.png"])
    whole = write_balanced_stream(tmp_path / "whole.h5", images, 30, **common).path
    summary = write_balanced_stream(tmp_path / "dask.h5", images, 30, client=client, parts=3, **common)
    assert summary.path.read_bytes() == whole.read_bytes()
    assert summary.n_items == 30 and summary.n_defective == 15 and "merge" in summary.timings
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask.h5", "whole.h5"]  # the parts are gone
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        write_balanced_stream(tmp_path / "dask.h5", images, 30, client=client, parts=3, **common)
    with pytest.raises(ValueError, match="shard: not with client"):
        write_balanced_stream(tmp_path / "x.h5", images, 30, client=client, shard=(0, 2), **common)


def test_a_killed_worker_still_gives_the_same_bytes(tmp_path, images, client):
    common = dict(size=SIZE, seed=9, batch_size=8)
    n = 480
    whole = write_balanced_stream(tmp_path / "whole.h5", images, n, **common).path
    out = tmp_path / "dask.h5"
    result = {}

    def run():
        try:
            result["summary"] = write_balanced_stream(out, images, n, client=client, parts=2, **common)
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    pids = client.run(os.getpid)
    parts = [cluster_part_path(out, k, 2) for k in range(2)]
    deadline = time.time() + 120
    killed = None
    while killed is None and time.time() < deadline and thread.is_alive():
        busy = [addr for addr, keys in client.processing().items() if keys]
        if busy and any(p.with_name(p.name + ".part").exists() for p in parts):
            time.sleep(0.3)  # a batch or two into the part
            killed = pids[busy[0]]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    thread.join(timeout=300)
    assert killed is not None, "the parts finished before a worker could be killed"
    assert "error" not in result, result.get("error")
    assert out.read_bytes() == whole.read_bytes()
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)


def test_ispad_synth_scheduler_is_wired(tmp_path, client, capsys):
    from ispad_core.cli import main

    common = ["--n", "12", "--size", "48", "--seed", "3", "--batch-size", "4", "--quiet"]
    assert main(["synth", "--out", str(tmp_path / "one.h5"), *common]) == 0
    address = client.scheduler.address
    assert main(["synth", "--out", str(tmp_path / "dask.h5"), *common, "--scheduler", address, "--parts", "2"]) == 0
    assert (tmp_path / "dask.h5").read_bytes() == (tmp_path / "one.h5").read_bytes()
    captured = capsys.readouterr()
    assert "writing on the Dask cluster" in captured.err and "wrote 12 patches" in captured.out
    assert main(["synth", "--out", str(tmp_path / "x.h5"), *common, "--parts", "2"]) == 1
    assert "--parts needs --scheduler ADDRESS" in capsys.readouterr().err
