"""Pixel-level metrics: AU-PRO, PRO curve and pixel AUROC against the literal references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from ispad_core.metrics import _pro, au_pro, pixel_roc_auc, pro_curve
from tests.reference.metrics_ref import (
    STRUCTURE_4,
    au_pro_ref,
    pixel_roc_auc_ref,
    pro_curve_ref,
    trapezoid_ref,
)

LIMITS = (0.3, 1.0, 0.05, 1e-4)


def _check_all(maps, masks, limits=LIMITS, tol=1e-9):
    """au_pro, pro_curve and pixel_roc_auc against the references on one case."""
    for limit in limits:
        ours = au_pro(maps, masks, fpr_limit=limit)
        ref = au_pro_ref(maps, masks, fpr_limit=limit)
        assert abs(ours - ref) <= tol, (limit, ours, ref)
    fpr, pro, thr = pro_curve(maps, masks)
    rfpr, rpro, rthr = pro_curve_ref(maps, masks)
    np.testing.assert_array_equal(thr, rthr)
    np.testing.assert_array_equal(fpr, rfpr)
    np.testing.assert_allclose(pro, rpro, rtol=0, atol=1e-12)
    assert abs(pixel_roc_auc(maps, masks) - pixel_roc_auc_ref(maps, masks)) <= 1e-12


def _random_case(rng, n=None, shape=None, levels=None, p_defective=0.3):
    n = n or int(rng.integers(1, 7))
    h, w = shape or tuple(rng.integers(1, 24, 2))
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        if rng.random() < p_defective:
            masks[i] = rng.random((h, w)) < rng.uniform(0.02, 0.4)
    if not masks.any():
        masks[0].flat[rng.integers(h * w)] = True
    if masks.all():
        masks[-1].flat[0] = False
    if levels:
        maps = rng.integers(0, levels, (n, h, w)) + masks * rng.integers(0, 3, (n, h, w))
        maps = maps.astype(np.float32) / levels
    else:
        maps = (rng.random((n, h, w)) + masks * rng.uniform(0, 1.0)).astype(rng.choice([np.float32, np.float64]))
    return maps, masks


@pytest.mark.parametrize("seed", range(30))
def test_random_cases_match_reference(seed):
    rng = np.random.default_rng(seed)
    levels = [None, 3, 17][seed % 3]
    maps, masks = _random_case(rng, levels=levels)
    _check_all(maps, masks)


def _labelled(shape, coords):
    m = np.zeros(shape, dtype=np.uint8)
    for r, c in coords:
        m[r, c] = 1
    return m


def test_single_pixel_regions():
    rng = np.random.default_rng(1)
    masks = np.zeros((3, 12, 12), dtype=np.uint8)
    masks[0, ::3, ::3] = 1  # isolated pixels, 16 regions
    masks[2, 5, 7] = 255
    maps = rng.random(masks.shape).astype(np.float32) + 0.3 * masks
    _check_all(maps, masks)


def test_diagonal_only_connections_are_one_region():
    # image 0: a diagonal of 9 pixels and its mirror, an X of 17 pixels touching only at corners
    # (one 8-connected region, seventeen 4-connected ones); image 1: a 2x2 block.
    # 8-connectivity: 2 regions; 4-connectivity: 18.
    mask = np.zeros((2, 9, 9), dtype=bool)
    mask[0] = np.eye(9, dtype=bool)
    mask[0, :, ::-1] |= np.eye(9, dtype=bool)
    mask[1, 3:5, 3:5] = True
    rng = np.random.default_rng(2)
    maps = rng.random(mask.shape) + 0.6 * mask * rng.random(mask.shape)
    _check_all(maps, mask)
    _, pro, _ = pro_curve(maps, mask)
    # PRO steps by 1/(2 * 17) per pixel of the X or 1/(2 * 4) per block pixel, so 2 * 68 * PRO
    # is an integer (with 4-connectivity an X pixel would add 1/18, which is not).
    x = 2 * 68 * pro
    assert np.allclose(x, np.round(x), atol=1e-9)
    eight = au_pro(maps, mask, fpr_limit=0.5)
    four = _pro._au_pro(maps, mask, fpr_limit=0.5, structure=_pro.STRUCTURE_4)
    assert abs(eight - au_pro_ref(maps, mask, fpr_limit=0.5)) <= 1e-9
    assert abs(four - au_pro_ref(maps, mask, fpr_limit=0.5, structure=STRUCTURE_4)) <= 1e-9
    assert abs(eight - four) > 1e-3


def test_connectivity_changes_the_weights():
    # Two diagonal pixels: one region of size 2 (8-conn) vs two regions of size 1 (4-conn), plus a
    # separate big region. PRO weights differ, so the two numbers must differ.
    mask = np.zeros((1, 6, 6), dtype=bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True
    mask[0, 3:6, 3:6] = True
    maps = np.zeros((1, 6, 6))
    maps[0, 0, 0] = 1.0
    maps[0, 3:6, 3:6] = 0.5
    eight = au_pro(maps, mask, fpr_limit=1.0)
    four = _pro._au_pro(maps, mask, fpr_limit=1.0, structure=_pro.STRUCTURE_4)
    assert eight == pytest.approx(au_pro_ref(maps, mask, fpr_limit=1.0), abs=1e-12)
    assert four == pytest.approx(au_pro_ref(maps, mask, fpr_limit=1.0, structure=STRUCTURE_4), abs=1e-12)
    assert eight != pytest.approx(four)


def test_regions_touching_the_border():
    rng = np.random.default_rng(3)
    masks = np.zeros((4, 10, 13), dtype=np.int32)
    masks[0, 0, :] = 1
    masks[1, :, -1] = 7
    masks[2, -3:, :3] = 1
    masks[3, 0, 0] = masks[3, -1, -1] = 1
    maps = rng.normal(size=masks.shape) + 1.5 * (masks != 0)
    _check_all(maps, masks)


def test_all_equal_scores():
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[1, 2:4, 2:5] = True
    maps = np.full(masks.shape, 0.25, dtype=np.float32)
    _check_all(maps, masks)
    # a single diagonal from (0, 0) to (1, 1): AU-PRO = limit / 2
    assert au_pro(maps, masks, fpr_limit=0.3) == pytest.approx(0.15, abs=1e-15)
    assert pixel_roc_auc(maps, masks) == 0.5
    fpr, pro, thr = pro_curve(maps, masks)
    assert fpr.tolist() == [0.0, 1.0] and pro.tolist() == [0.0, 1.0] and thr.tolist() == [np.inf, 0.25]


def test_defect_in_every_image():
    rng = np.random.default_rng(4)
    masks = rng.random((5, 9, 9)) < 0.2
    masks[:, 0, 0] = True
    maps = rng.random(masks.shape) + 0.4 * masks
    _check_all(maps, masks)


def test_most_images_without_defect():
    rng = np.random.default_rng(5)
    masks = np.zeros((40, 8, 8), dtype=bool)
    masks[17, 3:5, 3:6] = True
    maps = rng.random(masks.shape).astype(np.float32)
    maps[17] += 0.5 * masks[17]
    _check_all(maps, masks)


def test_list_of_maps_of_different_sizes_and_dtypes():
    rng = np.random.default_rng(6)
    shapes = [(5, 7), (12, 3), (1, 1), (9, 9), (0, 4)]
    maps = [rng.random(s) for s in shapes]
    masks = [rng.random(s) < 0.3 for s in shapes]
    masks[2][0, 0] = False
    masks[0][0, 0] = True
    maps[1] = maps[1].astype(np.float32)
    masks[3] = masks[3].astype(np.int64) * 3
    _check_all(maps, masks)


def test_list_and_array_inputs_agree_and_mask_dtypes_are_equivalent():
    rng = np.random.default_rng(7)
    maps, masks = _random_case(rng, n=4, shape=(11, 10), levels=5)
    a = au_pro(maps, masks)
    assert au_pro(list(maps), list(masks)) == a
    assert au_pro(maps, list(masks)) == a
    for dtype in (np.uint8, np.int8, np.int16, np.uint32, np.int64, np.uint64):
        assert au_pro(maps, (masks * 3).astype(dtype)) == a
        assert au_pro(maps, masks.astype(dtype) * -1 if np.issubdtype(dtype, np.signedinteger) else masks.astype(dtype)) == a
    assert pixel_roc_auc(list(maps), list(masks)) == pixel_roc_auc(maps, masks)


def test_integer_and_float16_scores():
    rng = np.random.default_rng(8)
    masks = rng.random((3, 7, 7)) < 0.2
    masks[0, 0, 0] = True
    base = rng.integers(0, 50, masks.shape) + 20 * masks
    for dtype in (np.uint8, np.int16, np.int32, np.int64, np.float16):
        maps = base.astype(dtype)
        assert abs(au_pro(maps, masks) - au_pro_ref(maps, masks)) <= 1e-9
        assert abs(pixel_roc_auc(maps, masks) - pixel_roc_auc_ref(maps, masks)) <= 1e-12


def test_signed_zeros_negative_and_extreme_scores():
    # -0.0 and +0.0 are equal scores; negative numbers, huge and tiny magnitudes order correctly.
    values = np.array([-0.0, 0.0, -1e30, 1e30, -5e-324, 5e-324, -1.0, 1.0, 3.0, -3.0])
    rng = np.random.default_rng(9)
    for dtype in (np.float64, np.float32):
        maps = rng.choice(values, (3, 9, 9)).astype(dtype)
        masks = rng.random(maps.shape) < 0.25
        masks[0, 0, 0] = True
        _check_all(maps, masks)


@pytest.mark.parametrize(
    "values",
    [
        [-1.7e308, 1.7e308, 0.0, 1.0],  # the span of the defective scores overflows
        [5e-324, 1e-323, 0.0, 1.5e-323],  # a denormal span: its reciprocal overflows
        [1e300, -1e300, 2e300, 3.0],
    ],
)
def test_extreme_score_ranges(values):
    rng = np.random.default_rng(14)
    maps = rng.choice(np.array(values), (2, 8, 8))
    masks = rng.random(maps.shape) < 0.4
    masks[0, 0, 0] = True
    masks[1, 0, 0] = False
    _check_all(maps, masks)


def test_single_defective_level_with_far_anomaly_free_scores():
    # One distinct defective score leaves the bucket table a zero scale; an anomaly-free score
    # whose distance to it overflows float64 made (v - origin) * scale = inf * 0 = NaN, and the
    # NaN bucket index read outside the table (a segmentation fault).
    maps = np.array([[[-1.7e308, 1.7e308, 0.0, 5.0]], [[-1.7e308, 1.0, 1.7e308, -1.7e308]]])
    masks = np.array([[[1, 0, 0, 0]], [[1, 0, 0, 1]]], dtype=bool)
    _check_all(maps, masks)
    _check_all(-maps, masks)


def test_clustered_defective_scores_share_one_bucket():
    # Hundreds of distinct defective scores within 1e-4 plus one far outlier: the bucket table is
    # useless and the crowded bucket is searched by bisection; ties with anomaly-free pixels.
    rng = np.random.default_rng(15)
    masks = rng.random((3, 30, 30)) < 0.5
    masks[0, 0, 0] = True
    maps = 0.5 + 1e-4 * rng.integers(0, 400, masks.shape) / 400
    maps[0, 0, 0] = 1e6
    _check_all(maps, masks)


def test_limit_exactly_on_a_curve_point():
    rng = np.random.default_rng(10)
    maps, masks = _random_case(rng, n=2, shape=(10, 10))
    n_neg = int((~masks).sum())
    for count in (1, n_neg // 3, n_neg // 2, n_neg - 1):
        limit = count / n_neg
        assert abs(au_pro(maps, masks, fpr_limit=limit) - au_pro_ref(maps, masks, fpr_limit=limit)) <= 1e-9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_radix_refinement_levels(monkeypatch, dtype):
    # Force the selection to refine through every 16-bit digit of the key, with clustered scores
    # that share their leading bits, so the multi-level path is checked against the reference.
    monkeypatch.setattr(_pro, "_REFINE_MIN", 0)
    rng = np.random.default_rng(11)
    masks = rng.random((4, 20, 20)) < 0.1
    masks[0, 0, 0] = True
    maps = (0.5 + 1e-3 * rng.random(masks.shape) + 2e-4 * masks).astype(dtype)
    maps[1, :5] = maps[1, 0, 0]  # ties across the cut
    for limit in (0.3, 0.01, 0.9):
        assert abs(au_pro(maps, masks, fpr_limit=limit) - au_pro_ref(maps, masks, fpr_limit=limit)) <= 1e-9
        fpr, pro, thr = pro_curve(maps, masks, fpr_limit=limit)
        rfpr, rpro, rthr = pro_curve_ref(maps, masks)
        m = fpr.size
        np.testing.assert_array_equal(thr, rthr[:m])
        np.testing.assert_allclose(pro, rpro[:m], atol=1e-12, rtol=0)
        assert fpr[-1] > limit and fpr[-2] <= limit


def test_truncated_curve_integrates_to_au_pro():
    rng = np.random.default_rng(12)
    maps, masks = _random_case(rng, n=5, shape=(16, 16), levels=40)
    for limit in (0.3, 0.07):
        fpr, pro, _ = pro_curve(maps, masks, fpr_limit=limit)
        assert fpr[-2] <= limit < fpr[-1]
        assert trapezoid_ref(fpr, pro, limit) / limit == pytest.approx(au_pro(maps, masks, fpr_limit=limit), abs=1e-12)


def test_pixel_roc_auc_matches_sklearn():
    rng = np.random.default_rng(13)
    for levels in (None, 4, 50):
        maps, masks = _random_case(rng, n=6, shape=(20, 17), levels=levels)
        expected = roc_auc_score(masks.ravel(), maps.ravel().astype(np.float64))
        assert abs(pixel_roc_auc(maps, masks) - expected) <= 1e-12


def test_perfect_and_inverted_detectors():
    masks = np.zeros((2, 6, 6), dtype=bool)
    masks[0, 1:3, 1:3] = True
    masks[1, 5, 5] = True
    perfect = masks.astype(np.float32)
    assert au_pro(perfect, masks) == 1.0 and pixel_roc_auc(perfect, masks) == 1.0
    assert au_pro(-perfect, masks) == 0.0 and pixel_roc_auc(-perfect, masks) == 0.0


# --------------------------------------------------------------------------- invariants


@st.composite
def pixel_cases(draw):
    n = draw(st.integers(1, 3))
    h = draw(st.integers(1, 7))
    w = draw(st.integers(1, 7))
    size = n * h * w
    mask = draw(st.lists(st.booleans(), min_size=size, max_size=size).filter(lambda v: 0 < sum(v) < len(v)))
    scores = draw(st.lists(st.integers(0, 6) | st.floats(-100, 100, width=32), min_size=size, max_size=size))
    return np.array(scores, dtype=np.float64).reshape(n, h, w), np.array(mask).reshape(n, h, w)


@settings(deadline=None, max_examples=80)
@given(pixel_cases(), st.sampled_from([0.3, 1.0, 0.1]))
def test_au_pro_invariant_under_strictly_increasing_transforms(case, limit):
    maps, masks = case
    a = au_pro(maps, masks, fpr_limit=limit)
    assert 0.0 <= a <= 1.0
    assert abs(a - au_pro_ref(maps, masks, fpr_limit=limit)) <= 1e-9
    # The most general strictly increasing transform of the data: any increasing sequence indexed
    # by the rank of the distinct value; plus analytic ones where float rounding keeps them strict.
    values, rank = np.unique(maps, return_inverse=True)
    steps = np.random.default_rng(values.size).exponential(size=values.size)
    transforms = [np.cumsum(steps)[rank].reshape(maps.shape) - 10.0]
    for t in (np.exp(maps / 50), 3 * maps - 7, np.arctan(maps), (maps + 200) ** 3):
        if np.unique(t).size == values.size:
            transforms.append(t)
    for transformed in transforms:
        assert abs(au_pro(transformed, masks, fpr_limit=limit) - a) <= 1e-12


@settings(deadline=None, max_examples=80)
@given(pixel_cases())
def test_pro_curve_is_monotone_and_ends_at_one_one(case):
    maps, masks = case
    fpr, pro, thr = pro_curve(maps, masks)
    assert fpr[0] == 0.0 and pro[0] == 0.0 and thr[0] == np.inf
    assert fpr[-1] == 1.0 and pro[-1] == 1.0
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0) and np.all(np.diff(thr) < 0)
    assert np.all((pro >= 0) & (pro <= 1))


@settings(deadline=None, max_examples=60)
@given(pixel_cases())
def test_pixel_roc_auc_complement(case):
    maps, masks = case
    a = pixel_roc_auc(maps, masks)
    assert a + pixel_roc_auc(-maps, masks) == pytest.approx(1.0, abs=1e-15)


# --------------------------------------------------------------------------- bad input

GOOD_MAPS = np.random.default_rng(0).random((2, 4, 4))
GOOD_MASKS = np.zeros((2, 4, 4), dtype=bool)
GOOD_MASKS[0, 1, 1] = True
NAN_MAPS = GOOD_MAPS.copy()
NAN_MAPS[1, 2, 2] = np.nan
INF_MAPS = GOOD_MAPS.copy()
INF_MAPS[0, 0, :2] = [np.inf, -np.inf]

PIXEL_FUNCS = (au_pro, pro_curve, pixel_roc_auc)
BAD_PIXEL_INPUT = [
    ((GOOD_MAPS, GOOD_MASKS[:, :, :3]), ValueError, r"masks: expected shape \(2, 4, 4\) like anomaly_maps, got \(2, 4, 3\)"),
    ((GOOD_MAPS, GOOD_MASKS[:1]), ValueError, r"masks: expected shape \(2, 4, 4\) like anomaly_maps, got \(1, 4, 4\)"),
    ((list(GOOD_MAPS), [GOOD_MASKS[0], GOOD_MASKS[1, :3]]), ValueError, r"masks\[1\]: expected shape \(4, 4\) like anomaly_maps\[1\], got \(3, 4\)"),
    ((list(GOOD_MAPS), list(GOOD_MASKS[:1])), ValueError, r"masks: expected 2 masks like anomaly_maps, got 1"),
    ((NAN_MAPS, GOOD_MASKS), ValueError, r"anomaly_maps: expected finite values, got 1 NaN or inf"),
    ((INF_MAPS, GOOD_MASKS), ValueError, r"anomaly_maps: expected finite values, got 2 NaN or inf"),
    ((list(INF_MAPS), list(GOOD_MASKS)), ValueError, r"anomaly_maps: expected finite values, got 2 NaN or inf"),
    ((GOOD_MAPS, np.zeros((2, 4, 4), bool)), ValueError, r"masks: expected at least one defective \(non-zero\) pixel, got none"),
    ((GOOD_MAPS, np.ones((2, 4, 4), np.uint8)), ValueError, r"masks: expected at least one anomaly-free \(zero\) pixel, got none"),
    (([], []), ValueError, r"anomaly_maps: expected at least one map, got an empty sequence"),
    ((np.zeros((0, 4, 4)), np.zeros((0, 4, 4), bool)), ValueError, r"anomaly_maps: expected at least one map, got shape \(0, 4, 4\)"),
    ((GOOD_MAPS[0], GOOD_MASKS[0]), ValueError, r"anomaly_maps: expected an \(N, H, W\) array or a list of \(H, W\) arrays, got an array of shape \(4, 4\)"),
    ((GOOD_MAPS, GOOD_MASKS.astype(np.float32)), TypeError, r"masks: expected a boolean or integer dtype \(non-zero = defective\), got dtype float32"),
    ((GOOD_MAPS > 0.5, GOOD_MASKS), TypeError, r"anomaly_maps: expected real-valued scores \(a float or integer dtype\), got dtype bool"),
    ((list(GOOD_MAPS.astype(complex)), list(GOOD_MASKS)), TypeError, r"anomaly_maps\[0\]: expected real-valued scores"),
    ((None, GOOD_MASKS), TypeError, r"anomaly_maps: expected an \(N, H, W\) array or a list of \(H, W\) arrays, got None"),
    ((GOOD_MAPS, None), TypeError, r"masks: expected an \(N, H, W\) array or a list of \(H, W\) arrays, got None"),
    ((list(GOOD_MAPS), [np.zeros(4), np.zeros(4)]), ValueError, r"masks\[0\]: expected a 2-D array, got 1-D"),
    (("maps", GOOD_MASKS), TypeError, r"anomaly_maps: expected an \(N, H, W\) array or a list of \(H, W\) arrays, got str"),
]


@pytest.mark.parametrize("func", PIXEL_FUNCS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("args, exc, match", BAD_PIXEL_INPUT, ids=[str(i) for i in range(len(BAD_PIXEL_INPUT))])
def test_bad_pixel_input(func, args, exc, match):
    with pytest.raises(exc, match=match):
        func(*args)


@pytest.mark.parametrize("limit", [0, -0.1, 1.0000001, 2])
@pytest.mark.parametrize("func", [au_pro, pro_curve], ids=lambda f: f.__name__)
def test_fpr_limit_outside_unit_interval(func, limit):
    with pytest.raises(ValueError, match=rf"fpr_limit: expected a value in \(0, 1\], got {limit:g}"):
        func(GOOD_MAPS, GOOD_MASKS, fpr_limit=limit)


@pytest.mark.parametrize("limit, exc", [(np.nan, ValueError), ("0.3", TypeError), (None, TypeError)])
def test_fpr_limit_type_and_nan(limit, exc):
    with pytest.raises(exc, match="fpr_limit: expected"):
        au_pro(GOOD_MAPS, GOOD_MASKS, fpr_limit=limit)


# --------------------------------------------------------------------------- 64-bit integer scores


def _big_integer_case():
    """int64 scores above 2**53 whose float64 roundings tie: only exact ranking separates them."""
    big = 2**60
    maps = np.array([[[big, big + 1], [big + 2, big + 3]], [[big + 5, -big], [big + 4, big + 1]]], np.int64)
    masks = np.array([[[0, 1], [0, 1]], [[1, 0], [0, 0]]], np.uint8)
    return maps, masks


def test_pixel_roc_auc_of_int64_beyond_2_53_matches_sklearn():
    maps, masks = _big_integer_case()
    assert float(maps[0, 0, 0]) == float(maps[0, 1, 1])  # float64 merges these scores
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert expected != roc_auc_score(masks.ravel(), maps.ravel().astype(np.float64))
    assert pixel_roc_auc(maps, masks) == pytest.approx(expected, abs=1e-12)
    assert pixel_roc_auc(maps, masks) == 23 / 30  # exact counts, one rounding
    # as a list, and with uint64 / int64 mixed (NumPy would promote them to float64)
    assert pixel_roc_auc(list(maps), list(masks)) == 23 / 30
    mixed = [maps[0].astype(np.uint64), maps[1]]
    assert pixel_roc_auc(mixed, list(masks)) == 23 / 30


def test_au_pro_of_int64_beyond_2_53_equals_that_of_its_ranks():
    maps, masks = _big_integer_case()
    ranks = np.unique(maps, return_inverse=True)[1].reshape(maps.shape).astype(np.float64)
    for limit in (0.3, 1.0):
        assert au_pro(maps, masks, fpr_limit=limit) == au_pro(ranks, masks, fpr_limit=limit)
    assert au_pro(maps, masks, fpr_limit=1.0) != au_pro(maps.astype(np.float64), masks, fpr_limit=1.0)


def test_pro_curve_refuses_int64_it_cannot_give_exact_thresholds_for():
    maps, masks = _big_integer_case()
    with pytest.raises(ValueError, match="anomaly_maps: integer scores beyond 2\\*\\*53"):
        pro_curve(maps, masks)
    small = maps - maps.max() + 2**53  # within float64's exact integers: accepted
    small[1, 0, 1] = 0
    fpr, pro, thr = pro_curve(small, masks)
    assert thr[1] == 2**53 and fpr[-1] == 1.0
