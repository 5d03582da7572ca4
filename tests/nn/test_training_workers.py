"""DataLoader workers never hang: training and on-the-fly streams with augmentation in worker processes.

Each scenario runs in a fresh interpreter (the threading layer and the OpenMP state are per
process) under a timeout, so that a hang fails the test instead of stalling the suite.
"""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240  # seconds; a healthy scenario takes a few (plus a first compile of the kernels)


def tiny_net(in_channels=1, num_classes=2, dropout=0.1):
    """A factory backbone for the scenarios: about 200 parameters."""
    from tests.nn._helpers import TinyNet

    return TinyNet(in_channels=in_channels)


def _run_script(script: str, *, env: dict | None = None) -> str:
    """Run ``script`` in a fresh interpreter of this tree; fail (killing its workers too) if it
    does not finish within TIMEOUT seconds; return its stdout."""
    full_env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    full_env.update(env or {})
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:  # a file: spawned workers import it
        f.write(textwrap.dedent(script))
    proc = subprocess.Popen([sys.executable, f.name], cwd=ROOT, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the process and its DataLoader workers
        out, err = proc.communicate()
        pytest.fail(f"hung: no result after {TIMEOUT} s\n{out[-2000:]}\n{err[-3000:]}")
    finally:
        os.unlink(f.name)
    assert proc.returncode == 0, err[-3000:]
    return out


# Several epochs of train_detector with real defects augmented at every draw (the Numba
# kernel in the workers), the default number of workers and two torch threads (so torch's
# OpenMP threads run in this process before the workers of the second epoch are forked).
_TRAIN = """
import sys, tempfile
from pathlib import Path
import numpy as np

def main():
    {before}
    from ispad_core.io import write_png, write_stream
    from ispad_core.nn import train_detector

    root = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    n, size = 64, 32
    labels = np.arange(n) % 2
    images = rng.integers(80, 120, (n, size, size), dtype=np.uint8)
    images[labels == 1, 10:14, 10:14] = 230
    write_stream(root / "s.h5", images, np.zeros((n, size, size), np.uint8), labels)
    for k in range(4):
        (root / "real" / "area").mkdir(parents=True, exist_ok=True)
        write_png(root / "real" / "area" / f"{{k}}.png", rng.integers(0, 256, (48, 48), dtype=np.uint8))
    for k in range(8):
        folder = root / "val" / ("good" if k % 2 == 0 else "bright")
        folder.mkdir(parents=True, exist_ok=True)
        write_png(folder / f"{{k}}.png", images[k])
    res = train_detector(root / "s.h5", out=root / "m.pt", real=root / "real", val=root / "val", p_inj=1 / 4,
                         batch_size=16, max_steps=12, threads=2, verbose=False, augment="lsm1",
                         backbone="tests.nn.test_training_workers:tiny_net")
    print("epochs", len(res.train.history), "steps", res.train.steps)

if __name__ == "__main__":
    main()
"""

_BEFORE = {
    # nothing of Numba's has run: the workers' kernels would start the threading layer
    "torch-threads-only": "pass",
    # parallel kernels ran in this process first (synthesis and augmentation)
    "parallel-kernels-first": """
    from ispad_core.augment import augment_batch
    from ispad_core.synth import synthesize_batch
    patches = np.full((4, 32, 32), 100, np.uint8)
    augment_batch(patches, "lsm1", rng=0)
    synthesize_batch(patches, "mixed", rng=0)""",
}


@pytest.mark.parametrize(("before", "layer"), [
    ("torch-threads-only", None),
    ("parallel-kernels-first", None),
    ("parallel-kernels-first", "workqueue"),
])
def test_training_epochs_with_augmented_real_defects_in_workers_finish(before, layer):
    script = _TRAIN.format(before=textwrap.indent(textwrap.dedent(_BEFORE[before]), "    ").strip())
    out = _run_script(script, env=None if layer is None else {"NUMBA_THREADING_LAYER": layer})
    assert out.split() == ["epochs", "3", "steps", "12"]


_STREAM = """
import numpy as np, torch

def main():
    from ispad_core.samples import screen_print
    from ispad_core.stream import SyntheticStream

    torch.set_num_threads(2)
    conv = torch.nn.Conv2d(1, 16, 3)
    conv(torch.rand(16, 1, 64, 64)).sum().backward()  # torch's OpenMP threads run in this process
    stream = SyntheticStream([screen_print((160, 160), rng=0)], n=8, seed=3, size=48, augment="lsm1")
    {before}
    loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=2, multiprocessing_context="{context}")
    for epoch in range(2):
        stream.set_epoch(epoch)
        got = torch.cat([images for images, _, _ in loader]).numpy()
        assert (got == stream[:][0]).all(), epoch
    print("equal")

if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(("layer", "context", "kernels_first"), [
    (None, "fork", False),
    (None, "fork", True),
    ("omp", "fork", True),
    (None, "forkserver", True),
])
def test_synthetic_stream_with_augmentation_in_workers(layer, context, kernels_first):
    if context not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {context} start method here")
    before = "stream[:]  # its parallel kernels run in this process first" if kernels_first else "pass"
    out = _run_script(_STREAM.format(before=before, context=context),
                      env=None if layer is None else {"NUMBA_THREADING_LAYER": layer})
    assert out.strip() == "equal"


_SERIAL_IN_WORKERS = """
import os
import numpy as np, torch
from ispad_core._shared import config as _config
from ispad_core.augment import augment_batch

class Items(torch.utils.data.Dataset):
    def __init__(self):
        self.parent = os.getpid()
    def __len__(self):
        return 4
    def __getitem__(self, i):
        return np.array([_config.run_serial(), os.getpid() != self.parent])

def main():
    patches = np.random.default_rng(0).integers(0, 256, (6, 40, 40), dtype=np.uint8)
    expected = augment_batch(patches, "lsm1", rng=5)   # parallel kernel, this process
    assert not _config.run_serial()
    for context in ("fork", "spawn"):
        loader = torch.utils.data.DataLoader(Items(), batch_size=2, num_workers=1, multiprocessing_context=context)
        flags = torch.cat(list(loader)).numpy()
        assert flags.all(), (context, flags)
    pid = os.fork()
    if pid == 0:  # a forked child runs the serial twin: the same bytes
        ok = _config.run_serial() and (augment_batch(patches, "lsm1", rng=5) == expected).all()
        os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0
    print("serial in workers")

if __name__ == "__main__":
    main()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_workers_and_forked_processes_run_the_serial_kernels():
    assert _run_script(_SERIAL_IN_WORKERS).strip() == "serial in workers"


def test_serial_twins_give_the_parallel_kernels_bytes():
    from ispad_core.augment import _kernels as K
    from ispad_core.augment import AUGMENT_PRESETS

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 33, 29, 1), dtype=np.uint8)
    masks = (rng.random((7, 33, 29)) < 0.2).astype(np.uint8)
    seeds = rng.choice(2**32, 7, replace=False).astype(np.uint32)
    p = AUGMENT_PRESETS["lsm1"]._packed()
    outs = []
    for kernel in (K.augment_batch, K.augment_serial):
        out, out_masks = np.empty_like(images), np.empty_like(masks)
        kernel(images, masks, True, seeds, p, 255, out, out_masks)
        outs.append((out, out_masks))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    m = np.array([[0.9, 0.1, 2.0], [-0.1, 0.9, 1.0]])
    lut = np.arange(256).astype(np.uint8)
    a, b = np.empty_like(images), np.empty_like(images)
    K.warp_batch_bilinear(images, m, lut, a)
    K.warp_serial_bilinear(images, m, lut, b)
    np.testing.assert_array_equal(a, b)
    a, b = np.empty_like(masks), np.empty_like(masks)
    K.warp_batch_nearest(masks, m, a)
    K.warp_serial_nearest(masks, m, b)
    np.testing.assert_array_equal(a, b)


_POLICY = """
import os, sys
from ispad_core._shared.config import prefer_passive_openmp
if sys.argv[1:] == ["torch-first"]:
    import torch  # the OpenMP runtime has read its settings: too late to ask
print(prefer_passive_openmp(), os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.parametrize(("env", "args", "expected"), [
    ({}, [], "True PASSIVE"),
    ({"OMP_WAIT_POLICY": "active"}, [], "False active"),  # the user's choice stands
    ({}, ["torch-first"], "False None"),
])
def test_training_commands_ask_for_passive_openmp_threads_before_torch_loads(env, args, expected):
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", _POLICY, *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **env})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == expected
