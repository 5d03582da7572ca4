"""Pixel AUROC and AU-PRO fed batch by batch: the same values as in memory, any split, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core.metrics import (
    PixelMetrics,
    _batches,
    _pro,
    au_pro,
    au_pro_batches,
    pixel_roc_auc,
    pixel_roc_auc_batches,
)
from ispad_core.metrics import _metrics_kernels as K
from tests.reference.metrics_ref import au_pro_ref, pixel_roc_auc_ref

LIMITS = (0.3, 1.0, 0.05, 1e-4)


def _random_case(rng, n=None, shape=None, levels=None):
    n = n or int(rng.integers(1, 9))
    h, w = shape or tuple(int(v) for v in rng.integers(1, 24, 2))
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        if rng.random() < 0.4:
            masks[i] = rng.random((h, w)) < rng.uniform(0.02, 0.4)
    masks[0].flat[int(rng.integers(h * w))] = True
    masks[-1].flat[0] = False
    maps = rng.random((n, h, w)) + masks * rng.uniform(0, 1.0)
    if levels:
        maps = np.round(maps * levels) / levels
    return maps.astype(np.float32), masks


def _split(n, rng):
    """Random batch boundaries over n maps (empty batches included)."""
    cuts = np.sort(rng.integers(0, n + 1, int(rng.integers(0, 5))))
    return list(zip(np.r_[0, cuts].astype(int), np.r_[cuts, n].astype(int)))


def _fed(maps, masks, bounds, as_list=False):
    pm = PixelMetrics()
    for a, b in bounds:
        pm.update(list(maps[a:b]) if as_list else maps[a:b], list(masks[a:b]) if as_list else masks[a:b])
    return pm


def _check_equal(pm, maps, masks, limits=LIMITS):
    """Batched == in memory (exactly), also by the in-memory level path, and == the reference."""
    for limit in limits:
        ours = pm.au_pro(fpr_limit=limit)
        assert ours == au_pro(maps, masks, fpr_limit=limit), limit
        assert ours == _pro._au_pro(maps, masks, fpr_limit=limit, structure=_pro.STRUCTURE_8, method="levels")
        assert abs(ours - au_pro_ref(maps, masks, fpr_limit=limit)) <= 1e-9, limit
    auroc = pm.pixel_roc_auc()
    assert auroc == pixel_roc_auc(maps, masks)
    assert auroc == _pro._pixel_roc_auc(maps, masks, method="levels")
    assert abs(auroc - pixel_roc_auc_ref(maps, masks)) <= 1e-12


@pytest.mark.parametrize("seed", range(24))
def test_random_splits_equal_in_memory_and_reference(seed):
    rng = np.random.default_rng(seed)
    maps, masks = _random_case(rng, levels=[None, 3, 40][seed % 3])
    _check_equal(_fed(maps, masks, _split(len(maps), rng), as_list=seed % 2 == 1), maps, masks)


@st.composite
def split_cases(draw):
    n = draw(st.integers(1, 6))
    h = draw(st.integers(1, 6))
    w = draw(st.integers(1, 6))
    size = n * h * w
    mask = draw(st.lists(st.booleans(), min_size=size, max_size=size).filter(lambda v: 0 < sum(v) < len(v)))
    scores = draw(st.lists(st.integers(-3, 3) | st.floats(-10, 10, width=32), min_size=size, max_size=size))
    cuts = draw(st.lists(st.integers(0, n), max_size=4))
    as_list = draw(st.booleans())
    maps = np.array(scores, dtype=np.float32).reshape(n, h, w)
    return maps, np.array(mask).reshape(n, h, w), sorted(cuts), as_list


@settings(deadline=None, max_examples=100)
@given(split_cases(), st.sampled_from([0.3, 1.0, 0.1]))
def test_any_split_gives_the_same_values(case, limit):
    maps, masks, cuts, as_list = case
    bounds = list(zip([0, *cuts], [*cuts, len(maps)]))
    pm = _fed(maps, masks, bounds, as_list)
    assert pm.au_pro(fpr_limit=limit) == au_pro(maps, masks, fpr_limit=limit)
    assert pm.pixel_roc_auc() == pixel_roc_auc(maps, masks)
    whole = _fed(maps, masks, [(0, len(maps))])
    assert pm.au_pro(fpr_limit=limit) == whole.au_pro(fpr_limit=limit)


def test_counts_past_a_counter_byte_and_many_flushes(monkeypatch):
    # Few distinct scores, thousands of pixels each: every counter wraps past 255 many times and
    # the overflow log fills and is merged more than once; a tiny stage forces many flushes and
    # batches larger than the stage.
    monkeypatch.setattr(_batches, "_STAGE_KEYS", 1 << 16)
    monkeypatch.setattr(_batches, "_LOG_KEYS", 7)
    rng = np.random.default_rng(20)
    masks = np.zeros((12, 120, 130), dtype=bool)
    masks[2, 10:40, 10:30] = masks[7, 50:52, :] = masks[11, 0, 0] = True
    maps = (rng.integers(0, 5, masks.shape) + 2 * masks).astype(np.float32)
    maps[5] = 2.0  # a whole map of one score, tied with defective pixels
    for bounds in ([(0, 12)], [(0, 1), (1, 6), (6, 12)], [(i, i + 1) for i in range(12)]):
        pm = _fed(maps, masks, bounds)
        assert pm._overflow_counts.sum() > 100
        _check_equal(pm, maps, masks)


def test_signed_zeros_negative_and_extreme_float32_scores():
    values = np.array([-0.0, 0.0, -3e38, 3e38, -1e-45, 1e-45, -1.0, 1.0, 3.0, -3.0], dtype=np.float32)
    rng = np.random.default_rng(21)
    maps = rng.choice(values, (5, 9, 9))
    masks = rng.random(maps.shape) < 0.25
    masks[0, 0, 0] = True
    _check_equal(_fed(maps, masks, [(0, 2), (2, 5)]), maps, masks)


def test_scores_spread_over_many_groups_and_subpages():
    # Scores from 1e-30 to 1e30: many groups of the table, sparse subpages, keys of both signs.
    rng = np.random.default_rng(22)
    maps = (10.0 ** rng.uniform(-30, 30, (6, 40, 40)) * rng.choice([-1, 1], (6, 40, 40))).astype(np.float32)
    masks = rng.random(maps.shape) < 0.1
    pm = _fed(maps, masks, [(0, 3), (3, 6)])
    _check_equal(pm, maps, masks)
    assert pm._n_groups > 100


def test_regions_are_labelled_per_map_whatever_the_batches():
    # A region touching the last row of map 0 and one touching the first row of map 1 are two
    # regions, even when both maps are in the same batch (or in a list of maps).
    masks = np.zeros((2, 6, 6), dtype=bool)
    masks[0, 4:, 2:4] = True
    masks[1, :2, 2:4] = True
    maps = np.linspace(0, 1, masks.size, dtype=np.float32).reshape(masks.shape)
    for bounds in ([(0, 2)], [(0, 1), (1, 2)]):
        pm = _fed(maps, masks, bounds)
        assert pm.n_regions == 2
        _check_equal(pm, maps, masks)


def test_lists_of_maps_of_different_sizes_and_mask_dtypes():
    rng = np.random.default_rng(23)
    shapes = [(5, 7), (12, 3), (1, 1), (9, 9), (0, 4), (30, 2)]
    maps = [rng.random(s).astype(np.float32) for s in shapes]
    masks = [rng.random(s) < 0.3 for s in shapes]
    masks[0][0, 0], masks[2][0, 0] = True, False
    masks[3] = masks[3].astype(np.int16) * -5
    masks[5] = masks[5].astype(np.uint64) * 255
    pm = PixelMetrics()
    pm.update(maps[:2], masks[:2])
    pm.update([], [])
    pm.update(maps[2:], masks[2:])
    assert pm.n_maps == 6 and pm.n_batches == 3
    for limit in LIMITS:
        assert pm.au_pro(fpr_limit=limit) == au_pro(maps, masks, fpr_limit=limit)
    assert pm.pixel_roc_auc() == pixel_roc_auc(maps, masks)


@pytest.mark.parametrize("dtype", [np.float16, np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64, np.float64])
def test_dtypes_float32_holds_exactly_are_accepted(dtype):
    rng = np.random.default_rng(24)
    masks = rng.random((4, 8, 8)) < 0.2
    masks[0, 0, 0] = True
    maps = (rng.integers(0, 100, masks.shape) + 30 * masks).astype(dtype)
    pm = _fed(maps, masks, [(0, 1), (1, 4)])
    assert pm.au_pro() == au_pro(maps, masks)
    assert pm.pixel_roc_auc() == pixel_roc_auc(maps, masks)
    if dtype == np.float64:  # float64 holding float32 values (e.g. upcast float32 maps)
        maps = rng.random(masks.shape).astype(np.float32).astype(np.float64)
        assert au_pro_batches([(maps, masks)]) == au_pro(maps, masks)


def test_results_mid_stream_then_more_batches():
    rng = np.random.default_rng(25)
    maps, masks = _random_case(rng, n=6, shape=(10, 10))
    masks[1, 0, 0] = True
    pm = PixelMetrics()
    pm.update(maps[:3], masks[:3])
    assert pm.au_pro() == au_pro(maps[:3], masks[:3])
    assert pm.pixel_roc_auc() == pixel_roc_auc(maps[:3], masks[:3])
    pm.update(maps[3:], masks[3:])
    _check_equal(pm, maps, masks)


def test_generators_are_read_once():
    rng = np.random.default_rng(26)
    maps, masks = _random_case(rng, n=7, shape=(9, 11))
    reads = []

    def batches():
        for i in range(0, 7, 2):
            reads.append(i)
            yield maps[i : i + 2], masks[i : i + 2]

    assert au_pro_batches(batches(), fpr_limit=0.2) == au_pro(maps, masks, fpr_limit=0.2)
    assert reads == [0, 2, 4, 6]
    assert pixel_roc_auc_batches(iter([(maps, masks)])) == pixel_roc_auc(maps, masks)
    assert pixel_roc_auc_batches([[list(maps), list(masks)]]) == pixel_roc_auc(maps, masks)


def test_a_failed_batch_changes_nothing():
    rng = np.random.default_rng(27)
    maps, masks = _random_case(rng, n=4, shape=(12, 12))
    bad = maps[:2].copy()
    bad[1, 3, 3] = np.nan
    pm = PixelMetrics()
    pm.update(maps[:2], masks[:2])
    with pytest.raises(ValueError, match=r"anomaly_maps \(batch 1\): expected finite values, got 1 NaN or inf"):
        pm.update(bad, masks[:2])
    with pytest.raises(ValueError, match=r"masks \(batch 1\): expected shape"):
        pm.update(maps[2:], masks[2:, :, :5])
    pm.update(maps[2:], masks[2:])
    assert pm.n_batches == 2 and pm.n_maps == 4
    _check_equal(pm, maps, masks)


def test_a_failed_batch_larger_than_the_stage_changes_nothing(monkeypatch):
    monkeypatch.setattr(_batches, "_STAGE_KEYS", 1 << 16)
    rng = np.random.default_rng(28)
    maps, masks = _random_case(rng, n=8, shape=(100, 100), levels=7)
    pm = PixelMetrics()
    pm.update(maps[:1], masks[:1])
    bad = maps.copy()
    bad[-1, -1, -1] = np.inf
    with pytest.raises(ValueError, match=r"anomaly_maps \(batch 1\): expected finite values, got 1 NaN or inf"):
        pm.update(bad[1:], masks[1:])
    pm.update(maps[1:], masks[1:])
    _check_equal(pm, maps, masks)


def test_exact_auroc_beyond_int64_products():
    # 2U summed in 128 bits: the int64 dot product of counts would overflow here.
    a = np.array([2**40, 3, 2**62 - 1], dtype=np.int64)
    b = np.array([2**40 + 7, 5, 2**62 - 3], dtype=np.int64)
    hi, lo = K.dot_u128(a, b)
    assert (int(hi) << 62) + int(lo) == sum(int(x) * int(y) for x, y in zip(a, b))
    from ispad_core.metrics._pixel_common import auroc_value as _auroc_value

    # One defective level with n_pos pixels above n_neg / 3 and tied with n_neg / 3 fault-free
    # pixels: 2U = n_pos * n_neg (2**68, past int64), AUROC exactly 1/2.
    n_pos, n_neg = 2**33, 3 * 2**35
    args = np.array([n_pos]), np.array([n_neg // 3]), np.array([n_neg // 3])
    assert _auroc_value(*args, n_pos, n_neg) == 0.5
    assert _auroc_value(np.array([n_pos]), np.array([n_neg]), np.array([0]), n_pos, n_neg) == 1.0


def test_weight_limbs_are_exact():
    from fractions import Fraction

    sizes = np.array([1, 2, 3, 7, 1000, 65536, 12345678, 2**40], np.int64)
    hi, lo = K.weight_limbs(sizes)
    for s, h, l in zip(sizes, hi, lo):
        assert l < 2**62 and Fraction(int(h) * 2**62 + int(l), 2**96) == Fraction(1.0 / float(s))
    np.testing.assert_array_equal(K.limbs_to_float(hi, lo), 1.0 / sizes)


# --------------------------------------------------------------------------- memory


def _peak_feeding(n_batches, maps, masks):
    pm = PixelMetrics()
    for _ in range(8):  # warm up: the tables and the stage reach their size
        pm.update(maps, masks)
    pm.au_pro()
    tracemalloc.start()
    try:
        for _ in range(n_batches):
            pm.update(maps, masks)
        pm.au_pro()
        return tracemalloc.get_traced_memory()[1], pm.nbytes
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_maps(monkeypatch):
    # 10 against 40 batches of 16 maps with 64 distinct scores: the peak and the held bytes are
    # the same (a growing structure, e.g. keeping the pixels, would quadruple them). The stage
    # grows up to a fixed size with the first batches; a small one reaches it in the warm-up.
    monkeypatch.setattr(_batches, "_STAGE_KEYS", 1 << 18)
    rng = np.random.default_rng(29)
    masks = np.zeros((16, 64, 64), dtype=bool)
    masks[3, 10:20, 10:20] = True
    maps = (rng.integers(0, 64, masks.shape) / 64 + 0.5 * masks).astype(np.float32)
    peak10, held10 = _peak_feeding(10, maps, masks)
    peak40, held40 = _peak_feeding(40, maps, masks)
    assert held40 == held10
    assert peak40 <= peak10 + 64 * 1024, (peak10, peak40)


# --------------------------------------------------------------------------- bad input

GOOD_MAPS = np.random.default_rng(0).random((2, 4, 4)).astype(np.float32)
GOOD_MASKS = np.zeros((2, 4, 4), dtype=bool)
GOOD_MASKS[0, 1, 1] = True
NAN_MAPS = GOOD_MAPS.copy()
NAN_MAPS[1, 2, 2] = np.nan
INF_LIST = [GOOD_MAPS[0], np.full((4, 4), np.inf, np.float32)]
GOOD = (GOOD_MAPS, GOOD_MASKS)

BAD_BATCHES = [
    ([GOOD, (GOOD_MAPS, GOOD_MASKS[:, :, :3])], ValueError, r"masks \(batch 1\): expected shape \(2, 4, 4\) like anomaly_maps, got \(2, 4, 3\)"),
    ([(NAN_MAPS, GOOD_MASKS)], ValueError, r"anomaly_maps \(batch 0\): expected finite values, got 1 NaN or inf"),
    ([GOOD, GOOD, (INF_LIST, list(GOOD_MASKS))], ValueError, r"anomaly_maps \(batch 2\): expected finite values, got 16 NaN or inf"),
    ([GOOD, (list(GOOD_MAPS), [GOOD_MASKS[0], GOOD_MASKS[1, :3]])], ValueError, r"masks\[1\] \(batch 1\): expected shape \(4, 4\) like anomaly_maps\[1\], got \(3, 4\)"),
    ([(list(GOOD_MAPS), list(GOOD_MASKS[:1]))], ValueError, r"masks \(batch 0\): expected 2 masks like anomaly_maps, got 1"),
    ([(GOOD_MAPS[0], GOOD_MASKS[0])], ValueError, r"anomaly_maps \(batch 0\): expected an \(N, H, W\) array or a list of \(H, W\) arrays, got an array of shape \(4, 4\)"),
    ([GOOD, (GOOD_MAPS, GOOD_MASKS.astype(np.float32))], TypeError, r"masks \(batch 1\): expected a boolean or integer dtype \(non-zero = defective\), got dtype float32"),
    ([(GOOD_MAPS > 0.5, GOOD_MASKS)], TypeError, r"anomaly_maps \(batch 0\): expected real-valued scores \(a float or integer dtype\), got dtype bool"),
    ([(list(GOOD_MAPS.astype(complex)), list(GOOD_MASKS))], TypeError, r"anomaly_maps\[0\] \(batch 0\): expected real-valued scores"),
    ([(None, GOOD_MASKS)], TypeError, r"anomaly_maps \(batch 0\): expected an \(N, H, W\) array or a list of \(H, W\) arrays, got None"),
    ([("maps", GOOD_MASKS)], TypeError, r"anomaly_maps \(batch 0\): expected an \(N, H, W\) array or a list of \(H, W\) arrays, got str"),
    ([(GOOD_MAPS.astype(np.float64) + 0.1, GOOD_MASKS)], ValueError, r"anomaly_maps \(batch 0\): float64 scores must be float32 values in the batched form"),
    ([GOOD, (GOOD_MAPS.astype(np.int64) + 2**25, GOOD_MASKS)], ValueError, r"anomaly_maps \(batch 1\): integer scores beyond 2\*\*24 are not exact in float32"),
    ([GOOD, GOOD_MAPS], TypeError, r"batches\[1\]: expected a pair \(anomaly_maps, masks\), got ndarray"),
    ([GOOD, (GOOD_MAPS, GOOD_MASKS, GOOD_MASKS)], TypeError, r"batches\[1\]: expected a pair \(anomaly_maps, masks\), got a tuple of length 3"),
    (None, TypeError, r"batches: expected an iterable of \(anomaly_maps, masks\) pairs, got NoneType"),
    (GOOD_MAPS, TypeError, r"batches: expected an iterable of \(anomaly_maps, masks\) pairs, got ndarray"),
    ([], ValueError, r"anomaly_maps: expected at least one map in the batches, got none"),
    ([(GOOD_MAPS[:0], GOOD_MASKS[:0])], ValueError, r"anomaly_maps: expected at least one map in the batches, got none"),
    ([(GOOD_MAPS, np.zeros((2, 4, 4), bool))] * 2, ValueError, r"masks: expected at least one defective \(non-zero\) pixel, got none"),
    ([(GOOD_MAPS, np.ones((2, 4, 4), np.uint8))], ValueError, r"masks: expected at least one anomaly-free \(zero\) pixel, got none"),
]


@pytest.mark.parametrize("func", [au_pro_batches, pixel_roc_auc_batches], ids=lambda f: f.__name__)
@pytest.mark.parametrize("batches, exc, match", BAD_BATCHES, ids=[str(i) for i in range(len(BAD_BATCHES))])
def test_bad_batches(func, batches, exc, match):
    with pytest.raises(exc, match=match):
        func(batches)


@pytest.mark.parametrize("limit, exc", [(0, ValueError), (1.5, ValueError), (np.nan, ValueError), ("0.3", TypeError)])
def test_fpr_limit_is_checked_before_reading_the_batches(limit, exc):
    def batches():
        raise AssertionError("read")
        yield  # pragma: no cover

    with pytest.raises(exc, match="fpr_limit: expected"):
        au_pro_batches(batches(), fpr_limit=limit)
    pm = PixelMetrics()
    pm.update(*GOOD)
    with pytest.raises(exc, match="fpr_limit: expected"):
        pm.au_pro(fpr_limit=limit)


# --------------------------------------------------------------------------- in-memory dispatch


def test_in_memory_float32_is_counted_and_thin_scores_fall_back_to_levels(monkeypatch):
    # float32 maps are counted per distinct score; scores spread so thinly that the counters would
    # pass the budget are ranked among the defective levels instead, with the same values.
    rng = np.random.default_rng(30)
    maps = (10.0 ** rng.uniform(-30, 30, (4, 30, 30))).astype(np.float32)
    masks = rng.random(maps.shape) < 0.1
    px = _pro._prepare(maps, masks)
    assert _pro._counted(px, _pro.STRUCTURE_8) is not None
    expected = au_pro(maps, masks), pixel_roc_auc(maps, masks)
    monkeypatch.setattr(_pro, "_COUNT_BUDGET", 0)
    assert _pro._counted(px, _pro.STRUCTURE_8) is None
    assert (au_pro(maps, masks), pixel_roc_auc(maps, masks)) == expected
    assert abs(expected[0] - au_pro_ref(maps, masks)) <= 1e-9
    bad = maps.copy()
    bad[3, 29, 29] = np.nan
    for func in (au_pro, pixel_roc_auc):
        with pytest.raises(ValueError, match=r"anomaly_maps: expected finite values, got 1 NaN or inf"):
            func(bad, masks)
