"""CPU smoke test of training: ResNet-18 from random initialisation on 64 x 64 patches of the
built-in sample with synthetic defects and injected "real" defects reaches MCC >= 0.8 on a
held-out, 10:1 imbalanced set.

Calibration (2 threads, batch 32, 200 steps, about 45 s at 160 patches/s on the development
machine; seeds 0-4 of the sample/data/training all checked):

- Optimiser: the paper's SGD at lr 5e-4 is meant for ImageNet-pretrained weights and barely
  moves a randomly initialised network in a few hundred steps. SGD at 5e-2 reached MCC 1.0 / 0.84
  for seeds 0 / 1 but 0.25 for seed 2 (unstable first epoch, loss near 2); AdamW at 1e-3 gave
  1.0, 1.0, 0.96, 1.0, 0.97 for seeds 0-4, so the test uses AdamW 1e-3 annealed to 1e-5.
- Defects: clearly visible dots (40-60 grey levels, 3-5 px wide, 3-8 walk steps, bright or dark).
  The synthesizer's weak default presets and medium dots (25-45 grey levels, 2-3.5 px) stayed
  near MCC 0.1 after 200-300 steps from random initialisation with either optimiser: on the busy
  screen-print background a from-scratch network needs far more than a few hundred steps for
  them (the paper fine-tunes ImageNet weights for tens of epochs).
- The checkpoint with the best validation loss is kept (the last epoch can swing), as the paper
  does, and evaluated on the separate held-out test set.
- This test as written, with SEED = 0, 1, 2, 3, 4: held-out MCC 1.00, 0.99, 1.00, 1.00, 1.00;
  SEED = 0 on one thread: 1.00. The 0.8 bar therefore has a wide margin.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.nn import InjectionDataset, evaluate, resnet18_classifier, train  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]

SIZE, BATCH, STEPS, SEED = 64, 32, 200, 0
N_TRAIN, N_REAL = 1600, 24
VAL = (200, 20)  # good, defective: 10:1
TEST = (400, 40)


def _crops(image: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    rows = rng.integers(0, image.shape[0] - SIZE + 1, n)
    cols = rng.integers(0, image.shape[1] - SIZE + 1, n)
    return np.stack([image[r:r + SIZE, c:c + SIZE] for r, c in zip(rows, cols)])


def _synthesize(patches, params, rng, defective):
    from ispad_core.synth import synthesize_batch

    with warnings.catch_warnings():  # a rare invisible defect is reported in `accepted`, not here
        warnings.simplefilter("ignore")
        res = synthesize_batch(patches, params, rng=rng, defective=defective)
    return res.images, defective & res.accepted


def _data():
    from ispad_core.samples import screen_print
    from ispad_core.synth import PRESETS

    rng = np.random.default_rng(SEED)
    sample = screen_print((768, 768), rng=SEED)
    train_region, held_out_region = sample[:, :448], sample[:, 448:]
    dots = dataclasses.replace(
        PRESETS["dot-dark"], contrast=(40.0, 60.0), width=(3.0, 5.0), steps=(3, 8), bright_probability=0.5
    )
    scratches = dataclasses.replace(PRESETS["scratch"], contrast=(40.0, 60.0))

    # balanced synthetic stream: every second patch gets a defect
    defective = np.arange(N_TRAIN) % 2 == 1
    images, labels = _synthesize(_crops(train_region, N_TRAIN, rng), dots, rng, defective)
    stream = list(zip(images, labels.astype(np.int64)))
    # the few "real" defects: another morphology, injected with p_inj = 1/16
    real, _ = _synthesize(_crops(train_region, N_REAL, rng), scratches, rng, np.ones(N_REAL, bool))

    def held_out(n_good, n_bad):
        flags = np.r_[np.zeros(n_good, bool), np.ones(n_bad, bool)]
        x, y = _synthesize(_crops(held_out_region, n_good + n_bad, rng), dots, rng, flags)
        return x, y.astype(np.int64)

    return stream, real, held_out(*VAL), held_out(*TEST), labels


def test_training_reaches_mcc_on_held_out_imbalanced_set():
    pytest.importorskip("ispad_core.synth")
    pytest.importorskip("ispad_core.samples")
    pytest.importorskip("ispad_core.metrics")
    stream, real, val, test, train_labels = _data()
    assert train_labels.mean() > 0.45  # nearly all requested defects were accepted
    assert (test[1] == 0).sum() >= 9 * (test[1] == 1).sum()  # about 10:1 imbalanced

    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    try:
        dataset = InjectionDataset(stream, real, p_inj=1 / 16, batch_size=BATCH, seed=SEED)
        torch.manual_seed(SEED)
        model = resnet18_classifier(in_channels=1)
        result = train(
            model, dataset, val, batch_size=BATCH, max_steps=STEPS, optimizer="adamw", lr=1e-3, lr_min=1e-5,
            t_0=STEPS, preprocess="lsm2", seed=SEED, verbose=False,
        )
        report = evaluate(model, test, preprocess="lsm2")
    finally:
        torch.set_num_threads(threads)
    assert result.steps == STEPS and result.history[result.best_epoch].improved
    assert report.mcc >= 0.8, f"{report}\n" + "\n".join(map(str, result.history))
