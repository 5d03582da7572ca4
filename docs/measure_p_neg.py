"""How the share of confirmed false alarms in a fine-tune (``p_neg``) acts, on a toy problem.

    python docs/measure_p_neg.py [SEED ...]    # default seed 0; about 10 s a seed on two CPU cores

The toy (24 x 24 grey patches, the tiny CNN of the tests):

- fault-free patches: noise around grey 100 with a faint periodic grid, in 8 "designs" (grid
  periods 4 to 11). Real defects: a bright 3 x 3 blob (grey 190 to 240). The synthetic stream
  draws blobs and thin 1 x 7 lines alike: it cannot know that on this product the lines are a
  harmless print feature, so a detector trained on it flags them: the false alarms a review
  rejects.
- base model: 600 steps on the balanced stream (batch 32) with no nuisance in it.
- fine-tunes: 150 steps from the base model (``init_from``) with 32 confirmed nuisance windows as
  ``negatives`` at p_neg in {none, 1/64, 1/16, 1/4}, and 600 steps at 1/16 and 1/4, same seed.
- measured on fresh patches: the false-alarm rate on lines (500 new ones), the
  false-alarm rate on plain fault-free patches of all designs (2 000), and the recall of defects
  (1 000 blobs), each at the run's own F1-optimal threshold on a validation set of 1 000
  fault-free and 200 real-defective patches.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ispad_core.nn import load_model, train_detector  # noqa: E402
from ispad_core.nn.training import predict  # noqa: E402

SIZE = 24
TINY = "tests.nn.test_detector:tiny_net"


def fault_free(rng, n, designs=range(4, 12)):
    periods = rng.choice(list(designs), n)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    out = rng.normal(100, 6, (n, SIZE, SIZE))
    for k, p in enumerate(periods):
        out[k] += 12 * ((yy % p == 0) | (xx % p == 0))
    return out.clip(0, 255).astype(np.uint8)


def marked(rng, n, shapes):
    """Fault-free patches with one bright mark (grey 190 to 240): a 3 x 3 "blob" or a 1 x 7 "line"."""
    out = fault_free(rng, n)
    for k in range(n):
        r, c = rng.integers(2, SIZE - 9, 2)
        grey = rng.integers(190, 241)
        if rng.choice(shapes) == "blob":
            out[k, r:r + 3, c:c + 3] = grey
        elif rng.random() < 0.5:
            out[k, r, c:c + 7] = grey
        else:
            out[k, r:r + 7, c] = grey
    return out


def defective(rng, n):
    return marked(rng, n, ["blob"])  # the real defects


def synthetic(rng, n):
    return marked(rng, n, ["blob", "line"])  # the synthesizer cannot know that lines are harmless here


def nuisance(rng, n):
    return marked(rng, n, ["line"])  # fault-free (a print feature), but flagged


def scores(path, images):
    model, _ = load_model(path, allow_factory=TINY)
    return predict(model, images, batch_size=256, preprocess=None, device="cpu").scores


def main(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 4000
    stream = [(im, 0) for im in fault_free(rng, n // 2)] + [(im, 1) for im in synthetic(rng, n // 2)]
    order = rng.permutation(n)
    stream = [stream[i] for i in order]
    val = (np.concatenate([fault_free(rng, 1000), defective(rng, 200)]), np.r_[np.zeros(1000, int), np.ones(200, int)])
    negatives = nuisance(rng, 32)
    test_nuisance, test_good, test_bad = nuisance(rng, 500), fault_free(rng, 2000), defective(rng, 1000)
    common = dict(val=val, backbone=TINY, batch_size=32, workers=0, threads=2, verbose=False, preprocess=None,
                  augment=None, seed=seed)
    work = Path(tempfile.mkdtemp(prefix="p_neg_"))
    base = train_detector(stream, out=work / "base.pt", max_steps=600, lr=3e-3, optimizer="adamw", **common)
    rows = [("base (no fine-tune)", base)]
    for label, p, steps in (("fine-tune, no negatives", None, 150), ("p_neg 1/64", 1 / 64, 150),
                            ("p_neg 1/16", 1 / 16, 150), ("p_neg 1/4", 1 / 4, 150),
                            ("p_neg 1/16, 600 steps", 1 / 16, 600), ("p_neg 1/4, 600 steps", 1 / 4, 600)):
        extra = {} if p is None else {"negatives": negatives, "p_neg": p}
        name = label.replace(" ", "_").replace("/", "-").replace(",", "")
        res = train_detector(stream, out=work / f"{name}.pt", max_steps=steps, init_from=base.path, lr=1e-3,
                             optimizer="adamw", **common, **extra)
        rows.append((label, res))
    print(f"seed {seed}")
    print(f"{'run':26s} {'line FA':>12s} {'plain FA':>9s} {'recall':>7s} {'negatives seen':>15s}")
    for label, res in rows:
        t = res.threshold
        fa_n = np.mean(scores(res.path, test_nuisance) >= t)
        fa_g = np.mean(scores(res.path, test_good) >= t)
        rec = np.mean(scores(res.path, test_bad) >= t)
        p = res.metadata["provenance"].get("negatives", {}).get("p_neg")
        steps = res.train.steps
        seen = "" if not p else f"~{steps * 32 * 0.5 * p / len(negatives):.0f} x each"
        print(f"{label:26s} {100 * fa_n:11.1f}% {100 * fa_g:8.1f}% {100 * rec:6.1f}% {seen:>15s}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["0"]:
        torch.manual_seed(int(arg))
        main(int(arg))
