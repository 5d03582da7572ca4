"""Measure the from-scratch recipe of ``ispad train`` against the paper's SGD 5e-4 (docs/training.md).

ResNet-18 from random initialisation on the data of the CPU smoke test (64 x 64 patches of the
built-in sample, clearly visible synthetic dots in every second patch, 24 "real" scratches
injected at p_inj = 1/16, a 10:1 validation and held-out test set), trained by
``ispad_core.nn.train_detector`` for the same number of steps (batch 32, one thread, validation
every 50 steps) with its default recipe (AdamW 1e-3 annealed) and with the paper's SGD at 5e-4;
the test set is scored at the threshold chosen on the validation set.

Run from the repository root:  python docs/measure_training_recipes.py [STEPS]   (default 150)
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ispad_core.nn import evaluate, train_detector  # noqa: E402
from tests.nn.test_smoke_training import _data  # noqa: E402


def main(steps: int) -> None:
    stream, real, val, test, _ = _data()
    for optimizer in (None, "sgd"):
        t0 = time.perf_counter()
        res = train_detector(stream, out=os.path.join(tempfile.mkdtemp(), "model.pt"), real=real, val=val,
                             p_inj=1 / 16, batch_size=32, max_steps=steps, val_every=50, optimizer=optimizer,
                             workers=0, threads=1, augment=None, verbose=False, seed=0)
        report = evaluate(res.model, test, preprocess="lsm2", threshold=res.threshold)
        print(f"{res.recipe}: {res.train.steps} steps, last train loss {res.train.history[-1].train_loss:.3f}, "
              f"validation MCC {res.report.mcc:.3f}, held-out test MCC {report.mcc:.3f}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
