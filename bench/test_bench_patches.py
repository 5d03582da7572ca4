"""Speed of the patch tooling beside its baselines, in the same run.

Run on a quiet machine with::

    python -m pytest bench/test_bench_patches.py -s -p no:randomly

- ``augment_batch`` with the LSM-1 settings on 256 x 256 uint8 patches, on one thread, beside
  ``scipy.ndimage.affine_transform`` (a dependency) doing the same work (one bilinear affine warp
  with reflected borders, then brightness and contrast), and beside albumentations (Affine, flips,
  RandomBrightnessContrast) when it is installed. Goal: >= 2 x albumentations' rate in the same run.
- ``stitch`` of float32 anomaly maps from the paper's 13 x 13 grid on a 2048 x 2048 image beside
  ``np.copyto`` of the same bytes. Goal: >= half of memcpy bandwidth.

Timings are the best of several repeats (wall clock), with our function and its baselines taking
turns, which is the least noisy figure on a shared machine. Under ``--benchmark-disable`` every workload shrinks to a few tiny items, so CI only
checks that the code runs.
"""

from __future__ import annotations

import importlib.util
import math
import time

import numba
import numpy as np
import pytest
import scipy.ndimage as ndi

from ispad_core.augment import AUGMENT_PRESETS, augment_batch
from ispad_core.preprocess import gaussian_smooth
from ispad_core.tiling import sliding_windows, stitch

GOAL_ALBUMENTATIONS_RATIO = 2.0  # ours / albumentations, both on one thread, in the same run
GOAL_PATCHES_PER_S = 5800  # 2 x albumentations' ~2 900 patches/s (LSM-1 settings, one thread, an older 2-core x86 machine)
HAVE_ALBUMENTATIONS = importlib.util.find_spec("albumentations") is not None


def _best_seconds(fns: dict, repeats: int) -> dict:
    """Best wall time of each function; the functions take turns, so a burst of load on a shared
    machine hits all of them alike instead of skewing one ratio."""
    for fn in fns.values():
        fn()  # warm-up (compilation, caches)
    best = {name: math.inf for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


@pytest.fixture
def one_thread():
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def _patches(n: int, size: int = 256) -> np.ndarray:
    """Textured uint8 patches (smoothed noise plus a periodic print-like grid)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    grid = 60.0 * ((np.sin(xx / 3.0) > 0.6) | (np.sin(yy / 3.0) > 0.6))
    noise = ndi.gaussian_filter(rng.normal(0.0, 40.0, (n, size, size)), (0, 1.2, 1.2))
    return np.clip(110.0 + grid + noise, 0, 255).astype(np.uint8)


def _scipy_lsm1(patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same augmentation written with scipy.ndimage: one affine_transform per patch."""
    p = AUGMENT_PRESETS["lsm1"]
    out = np.empty_like(patches)
    h, w = patches.shape[1:3]
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    for i, patch in enumerate(patches):
        x = patch
        if rng.random() < p.p_affine:
            t = math.radians(rng.uniform(*p.rotation))
            k = math.tan(math.radians(rng.uniform(*p.shear)))
            s = rng.uniform(*p.scale)
            fy = -1.0 if rng.random() < p.vflip else 1.0
            fx = -1.0 if rng.random() < p.hflip else 1.0
            a = np.array([[fx, 0], [0, fy]]) @ np.array(
                [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]
            ) @ np.array([[1.0, k], [0.0, 1.0]]) * s
            inv = np.linalg.inv(a)[::-1, ::-1]  # (x, y) -> (row, col)
            x = ndi.affine_transform(patch, inv, offset=centre - inv @ centre, order=1, mode="mirror")
        b = rng.uniform(*p.brightness)
        c = rng.uniform(*p.contrast)
        mu = b * x.mean()
        out[i] = np.clip(c * (b * x - mu) + mu + 0.5, 0, 255)
    return out


def _albumentations_lsm1():
    import albumentations as A
    import cv2

    cv2.setNumThreads(1)
    p = AUGMENT_PRESETS["lsm1"]
    return A.Compose(
        [
            A.Affine(
                rotate=p.rotation, scale=p.scale, shear={"x": p.shear, "y": (0, 0)},
                border_mode=cv2.BORDER_REFLECT_101, interpolation=cv2.INTER_LINEAR, p=p.p_affine,
            ),
            A.VerticalFlip(p=p.vflip),
            A.HorizontalFlip(p=p.hflip),
            A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=1.0),
        ]
    )


def test_augment_batch_lsm1_one_thread(benchmark, one_thread):
    n = 2 if benchmark.disabled else 256
    patches = _patches(n)
    seeds = np.arange(n, dtype=np.uint32)
    images = benchmark(augment_batch, patches, "lsm1", seeds=seeds)
    assert images.shape == patches.shape and images.dtype == np.uint8
    repeats = 1 if benchmark.disabled else 8
    n_ref = 2 if benchmark.disabled else 32
    fns = {
        "ours": lambda: augment_batch(patches, "lsm1", seeds=seeds),
        "scipy": lambda: _scipy_lsm1(patches[:n_ref], np.random.default_rng(0)),
    }
    if HAVE_ALBUMENTATIONS:
        transform = _albumentations_lsm1()

        def run_albumentations():
            for patch in patches:
                transform(image=patch)

        fns["albumentations"] = run_albumentations
    best = _best_seconds(fns, repeats)
    ours = n / best["ours"]
    scipy_rate = n_ref / best["scipy"]
    info = {
        "ours_patches_per_s": round(ours),
        "scipy_patches_per_s": round(scipy_rate),
        "ratio_vs_scipy": round(ours / scipy_rate, 2),
        "goal_patches_per_s": GOAL_PATCHES_PER_S,
    }
    line = (
        f"\naugment_batch lsm1 256x256 uint8, 1 thread: {ours:.0f} patches/s; "
        f"scipy.ndimage.affine_transform: {scipy_rate:.0f} patches/s ({ours / scipy_rate:.1f}x)"
    )
    if HAVE_ALBUMENTATIONS:
        alb = n / best["albumentations"]
        info.update({"albumentations_patches_per_s": round(alb), "ratio_vs_albumentations": round(ours / alb, 2)})
        line += f"; albumentations: {alb:.0f} patches/s ({ours / alb:.2f}x, goal {GOAL_ALBUMENTATIONS_RATIO:g}x)"
    line += f"; goal {GOAL_PATCHES_PER_S} patches/s"
    benchmark.extra_info.update(info)
    print(line)


def test_stitch_vs_memcpy(benchmark):
    side, size, stride = (300, 64, 40) if benchmark.disabled else (2048, 256, 160)
    image = np.zeros((side, side), np.float32)
    tiles, origins = sliding_windows(image, size, stride)
    maps = np.random.default_rng(0).random(tiles.shape, dtype=np.float32)
    out = benchmark(stitch, maps, origins, image.shape)
    assert out.shape == image.shape
    repeats = 1 if benchmark.disabled else 15
    dst = np.empty_like(maps)
    lines = []
    before = numba.get_num_threads()
    for threads in sorted({1, before}):

        def with_threads(fn, k=threads):
            def run():
                numba.set_num_threads(k)
                try:
                    fn()
                finally:
                    numba.set_num_threads(before)

            return run

        best = _best_seconds(
            {
                "mean": with_threads(lambda: stitch(maps, origins, image.shape)),
                "max": with_threads(lambda: stitch(maps, origins, image.shape, reduce="max")),
                "copy": lambda: np.copyto(dst, maps),
            },
            repeats,
        )
        gbs = {k: maps.nbytes / t / 1e9 for k, t in best.items()}
        benchmark.extra_info[f"threads_{threads}"] = {
            "stitch_mean_GBps": round(gbs["mean"], 2),
            "stitch_max_GBps": round(gbs["max"], 2),
            "memcpy_GBps": round(gbs["copy"], 2),
        }
        lines.append(
            f"stitch {len(maps)} float32 maps ({maps.nbytes / 1e6:.0f} MB), {threads} thread(s): "
            f"mean {gbs['mean']:.1f} GB/s ({gbs['mean'] / gbs['copy']:.2f} x memcpy), "
            f"max {gbs['max']:.1f} GB/s ({gbs['max'] / gbs['copy']:.2f} x); np.copyto {gbs['copy']:.1f} GB/s"
        )
    print("\n" + "\n".join(lines) + "  (goal: >= 0.5 x memcpy)")


def test_gaussian_smooth_vs_scipy(benchmark):
    n = 2 if benchmark.disabled else 128
    batch = _patches(n)
    out = benchmark(gaussian_smooth, batch)
    assert out.shape == batch.shape
    repeats = 1 if benchmark.disabled else 5
    best = _best_seconds(
        {
            "ours": lambda: gaussian_smooth(batch),
            "scipy": lambda: ndi.gaussian_filter(batch, sigma=(0, 1.0, 1.0), truncate=1.0, mode="reflect"),
        },
        repeats,
    )
    ours, ref = n / best["ours"], n / best["scipy"]
    benchmark.extra_info.update({"ours_patches_per_s": round(ours), "scipy_patches_per_s": round(ref)})
    print(
        f"\ngaussian_smooth 3x3 sigma 1 on {n} x 256x256 uint8 ({numba.get_num_threads()} threads): "
        f"{ours:.0f} patches/s; scipy.ndimage.gaussian_filter: {ref:.0f} patches/s ({ours / ref:.1f}x)"
    )
