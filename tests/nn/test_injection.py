"""Real-defect injection: rate, reproducibility per (seed, epoch, i), workers, bounds (equation 1)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.nn import InjectionDataset, injection_bounds  # noqa: E402

pytestmark = pytest.mark.torch


class IndexedStream:
    """Item i is a 4 x 4 image holding i (little-endian bytes) and label i % 2; optional mask."""

    def __init__(self, n, *, with_mask=False, labels=None):
        self.n = n
        self.with_mask = with_mask
        self.labels = labels

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        image = np.zeros((4, 4), np.uint8)
        image.flat[:4] = np.frombuffer(np.uint32(i).tobytes(), np.uint8)
        label = int(i % 2) if self.labels is None else int(self.labels[i])
        if self.with_mask:
            return image, np.zeros((4, 4), np.uint8), label
        return image, label


def _real(m=5):
    # real patch j is filled with 200 + j, distinguishable from stream items
    return np.stack([np.full((4, 4), 200 + j, np.uint8) for j in range(m)])


def _items(ds, indices):
    return [(bytes(np.asarray(ds[i][0]).tobytes()), ds[i][1]) for i in indices]


def test_fraction_of_real_items_is_p_inj_within_bounds():
    n, p = 400_000, 1 / 32
    ds = InjectionDataset(IndexedStream(n), _real(), p_inj=p, batch_size=128, seed=11)
    for epoch in range(3):
        plan = ds.plan(epoch)
        # 5-sigma binomial bound: fails by chance with probability ~6e-7
        assert abs(plan.fraction - p) < 5 * math.sqrt(p * (1 - p) / n)
        # the real patch is chosen uniformly: chi-square over 5 bins (p < 1e-6 of failing by chance)
        counts = np.bincount(plan.real_index[plan.injected], minlength=5)
        expected = counts.sum() / 5
        assert ((counts - expected) ** 2 / expected).sum() < 33.4
        assert (plan.real_index[~plan.injected] == -1).all()


def test_per_batch_expectation_and_independence_between_epochs():
    n, p, b = 128 * 2000, 0.25, 128
    ds = InjectionDataset(IndexedStream(n), _real(), p_inj=p, batch_size=b, seed=3)
    a, c = ds.plan(0).injected, ds.plan(1).injected
    per_batch = a.reshape(-1, b).sum(axis=1)
    assert abs(per_batch.mean() - p * b) < 5 * math.sqrt(p * (1 - p) * b / per_batch.size)
    # two epochs are independent draws: P(both) = p^2
    both = (a & c).mean()
    assert abs(both - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / n)


def test_items_follow_the_plan():
    ds = InjectionDataset(IndexedStream(3000), _real(), p_inj=0.25, batch_size=32, seed=5)
    ds.set_epoch(2)
    plan = ds.plan()
    assert plan.epoch == 2
    for i in range(3000):
        image, label = ds[i]
        if plan.injected[i]:
            assert label == 1 and (image == 200 + plan.real_index[i]).all()
        else:
            assert label == i % 2 and np.frombuffer(image.flat[:4].tobytes(), np.uint32)[0] == i


def test_same_seed_epoch_same_items_other_seed_or_epoch_differs():
    make = lambda seed: InjectionDataset(IndexedStream(2000), _real(), p_inj=0.1, batch_size=32, seed=seed)  # noqa: E731
    a, b, c = make(1), make(1), make(2)
    np.testing.assert_array_equal(a.plan(4).injected, b.plan(4).injected)
    np.testing.assert_array_equal(a.plan(4).real_index, b.plan(4).real_index)
    assert not np.array_equal(a.plan(4).injected, c.plan(4).injected)
    assert not np.array_equal(a.plan(4).injected, a.plan(5).injected)
    # reading order does not matter
    order = np.random.default_rng(0).permutation(2000)
    a.set_epoch(4)
    b.set_epoch(4)
    fwd = dict(zip(range(2000), _items(a, range(2000))))
    rev = dict(zip(order, _items(b, order)))
    assert fwd == rev


def _transform(image, rng):
    # uses the per-item rng: the result must not depend on the worker
    return (image.astype(np.int64) + rng.integers(0, 50, image.shape)).astype(np.uint8)


@pytest.mark.parametrize("num_workers", [1, 2])
def test_same_items_with_0_1_2_workers(num_workers):
    ds = InjectionDataset(IndexedStream(600, with_mask=True), _real(), p_inj=0.25, batch_size=16, seed=9,
                          real_transform=_transform)
    ds.set_epoch(3)

    def collect(workers):
        loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=False, num_workers=workers)
        images, labels = zip(*loader)
        return torch.cat(images), torch.cat(labels)

    ref_images, ref_labels = collect(0)
    images, labels = collect(num_workers)
    assert torch.equal(images, ref_images) and torch.equal(labels, ref_labels)
    assert 0 < int((ref_images[:, 0, 0] >= 200).sum()) < 600  # some injected, some not
    assert ref_images.shape == (600, 4, 4)  # (image, mask, label) items become (image, label)


def test_real_transform_gets_a_generator_seeded_by_seed_epoch_index():
    seen = []

    def spy(image, rng):
        assert isinstance(rng, np.random.Generator)
        seen.append(rng.integers(0, 2**62))
        return image

    ds = InjectionDataset(IndexedStream(200), _real(), p_inj=0.25, batch_size=8, seed=4, real_transform=spy)
    idx = np.flatnonzero(ds.plan().injected)[:3]
    for i in idx:
        ds[int(i)]
    expected = [np.random.default_rng(np.random.SeedSequence((4, 0, int(i)))).integers(0, 2**62) for i in idx]
    assert seen == expected


def test_global_rng_untouched():
    ds = InjectionDataset(IndexedStream(100), _real(), p_inj=0.25, batch_size=8, seed=4, real_transform=_transform)
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    for i in range(100):
        ds[i]
    ds.plan(7)
    assert (np.random.get_state()[1] == np_state).all() and torch.equal(torch.get_rng_state(), torch_state)


def test_oversampling_mode_is_half_real_over_a_fault_free_stream():
    n = 20_000
    ds = InjectionDataset(IndexedStream(n, labels=np.zeros(n)), _real(), p_inj=0.5, batch_size=128, seed=0,
                          mode="oversampling")
    frac = ds.plan().fraction
    assert abs(frac - 0.5) < 5 * math.sqrt(0.25 / n)
    labels = np.array([ds[i][1] for i in range(2000)])
    np.testing.assert_array_equal(labels, ds.plan().injected[:2000].astype(int))


def test_oversampling_rejects_a_stream_with_defects():
    ds = InjectionDataset(IndexedStream(50), _real(), p_inj=0.5, batch_size=8, seed=0, mode="oversampling")
    i = int(np.flatnonzero(~ds.plan().injected & (np.arange(50) % 2 == 1))[0])
    with pytest.raises(ValueError, match=f"mode='oversampling' expects a pure fault-free stream .*item {i} has label 1"):
        ds[i]


def test_injection_bounds():
    assert injection_bounds(32) == (1 / 32, 0.25)
    # the paper's setting: p_inj = 1/32 at batch 128, four real defects per batch in expectation
    ds = InjectionDataset(IndexedStream(10), _real(), p_inj=1 / 32, batch_size=128, seed=0)
    assert ds.p_inj * ds.batch_size == 4


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"p_inj": 1 / 256}, ValueError,
         r"p_inj: expected a value in \[1/B, 0.25\] = \[0.0078125, 0.25\] for batch_size B=128, got 0.00390625\. "
         r"Equation 1 of the paper: the lower bound puts at least one real defect into each batch"),
        ({"p_inj": 0.3}, ValueError, r"upper bound keeps real defects from dominating the synthetic stream"),
        ({"p_inj": 0.2, "batch_size": 3}, ValueError, r"an empty interval for batch_size B=3 \(use B >= 4\)"),
        ({"p_inj": 1.5}, ValueError, r"p_inj: expected a value in \[0, 1\], got 1.5"),
        ({"p_inj": "0.1"}, TypeError, "p_inj: expected a real number, got str"),
        ({"p_inj": 0.25, "mode": "oversampling"}, ValueError,
         r"mode='oversampling' is the paper's special case of a pure fault-free stream with p_inj = 0.5"),
        ({"mode": "dataset"}, ValueError, "mode: expected one of 'mixed', 'oversampling', got 'dataset'"),
        ({"batch_size": 0}, ValueError, "batch_size: expected an int >= 1, got 0"),
        ({"seed": -1}, ValueError, "seed: expected an int >= 0, got -1"),
        ({"seed": 1.0}, TypeError, "seed: expected an int, got float"),
        ({"real_transform": 3}, TypeError, "real_transform: expected a callable or None, got int"),
        ({"stream": 5}, TypeError, "stream: expected an object with __len__ and __getitem__, got int"),
        ({"stream": []}, ValueError, "stream: expected a non-empty stream, got length 0"),
        ({"real": np.zeros((0, 4, 4), np.uint8)}, ValueError, "real: expected at least one real defective patch, got 0"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = {"stream": IndexedStream(10), "real": _real(), "p_inj": 0.1, "batch_size": 128, "seed": 0, **kwargs}
    with pytest.raises(exc, match=match):
        InjectionDataset(args.pop("stream"), args.pop("real"), **args)


def test_real_patch_of_wrong_shape_is_a_clear_error():
    real = np.zeros((2, 8, 8), np.uint8)
    ds = InjectionDataset(IndexedStream(100), real, p_inj=0.25, batch_size=8, seed=0)
    i = int(np.flatnonzero(ds.plan().injected)[0])
    with pytest.raises(ValueError, match=r"expected injected patches of the stream's shape \(4, 4\) and dtype uint8, "
                                         r"but real holds shape \(8, 8\)"):
        ds[i]


def test_index_errors():
    ds = InjectionDataset(IndexedStream(10), _real(), p_inj=0.25, batch_size=8, seed=0)
    with pytest.raises(IndexError, match=r"index: expected an int in \[-10, 10\), got 10"):
        ds[10]
    with pytest.raises(TypeError, match="index: expected an int, got float"):
        ds[1.0]
    assert _items(ds, [-1]) == _items(ds, [9])
    with pytest.raises(ValueError, match="epoch: expected an int >= 0, got -1"):
        ds.set_epoch(-1)


class _BatchStream:
    """A stream that counts its batched reads."""

    def __init__(self, n):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
        self.labels = np.arange(n) % 2
        self.calls = []

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], np.zeros((8, 8), np.uint8), int(self.labels[i])

    def __getitems__(self, indices):
        self.calls.append(list(indices))
        return [self[i] for i in indices]


@pytest.mark.parametrize("batched", [True, False])
def test_getitems_equals_item_reads_and_reads_the_stream_in_one_call(batched):
    stream = _BatchStream(200)
    if not batched:
        stream = list(stream[i] for i in range(200))
    real = np.full((3, 8, 8), 255, np.uint8)
    ds = InjectionDataset(stream, real, p_inj=0.25, batch_size=16, seed=4)
    ds.set_epoch(2)
    indices = [5, 199, 0, 17, 5, -1, 64, 33, 120, 7, 8, 9, 10, 11, 12, 13]
    items = ds.__getitems__(indices)
    assert len(items) == len(indices)
    for (image, label), i in zip(items, indices):
        ref_image, ref_label = ds[i]
        assert label == ref_label and np.array_equal(image, ref_image)
    injected = ds.plan().injected[np.asarray(indices) % 200]
    assert injected.any() and not injected.all()
    if batched:
        assert stream.calls == [[i % 200 for i, inj in zip(indices, injected) if not inj]]


def test_getitems_reaches_the_dataloader():
    torch_data = pytest.importorskip("torch.utils.data")
    stream = _BatchStream(64)
    ds = InjectionDataset(stream, np.full((2, 8, 8), 255, np.uint8), p_inj=1 / 16, batch_size=16, seed=0)
    loader = torch_data.DataLoader(ds, batch_size=16, collate_fn=lambda batch: batch)
    batches = list(loader)
    assert len(batches) == 4 and len(stream.calls) == 4


def test_getitems_checks_oversampling_labels_and_indices():
    stream = _BatchStream(32)
    ds = InjectionDataset(stream, np.full((2, 8, 8), 255, np.uint8), p_inj=0.5, batch_size=16, seed=0,
                          mode="oversampling")
    with pytest.raises(ValueError, match="pure fault-free stream.*ispad synth --defect-fraction 0"):
        ds.__getitems__(list(range(32)))
    with pytest.raises(IndexError, match=r"index: expected an int in \[-32, 32\), got 32"):
        ds.__getitems__([0, 32])
    with pytest.raises(TypeError, match="index: expected an int, got float"):
        ds.__getitems__([0.5])
