"""Slow reference of the defect measurements of ``ispad_core.synth.fit``, written from their
definitions with plain loops: the Euclidean distance transform by brute force, the ridge by
comparing each pixel with its 3 x 3 neighbours, the ring by repeated 8-neighbour growth, the
principal axis from the 2 x 2 scatter matrix in closed form.
"""

from __future__ import annotations

import math

import numpy as np


def distance_transform(mask):
    """Distance of each mask pixel to the nearest pixel outside it (the border counts as outside)."""
    h, w = mask.shape
    outside = [(i, j) for i in range(-1, h + 1) for j in range(-1, w + 1)
               if not (0 <= i < h and 0 <= j < w) or not mask[i, j]]
    dist = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            if mask[i, j]:
                dist[i, j] = min(math.hypot(i - a, j - b) for a, b in outside)
    return dist


def ridge(mask):
    dist = distance_transform(mask)
    h, w = mask.shape
    top = np.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            if not mask[i, j]:
                continue
            best = 0.0
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    a, b = i + di, j + dj
                    if 0 <= a < h and 0 <= b < w:
                        best = max(best, dist[a, b])
            top[i, j] = dist[i, j] >= best
    return dist, top


def grow(mask, steps):
    """``steps`` times: every pixel with an 8-neighbour in the set joins it."""
    h, w = mask.shape
    cur = mask.copy()
    for _ in range(steps):
        nxt = cur.copy()
        for i in range(h):
            for j in range(w):
                if cur[i, j]:
                    for di in (-1, 0, 1):
                        for dj in (-1, 0, 1):
                            a, b = i + di, j + dj
                            if 0 <= a < h and 0 <= b < w:
                                nxt[a, b] = True
        cur = nxt
    return cur


def measure(image, mask, gap=2, ring=4):
    """(area, background, contrast, polarity, width, length, straightness, roughness) of one defect."""
    grey = image.astype(np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    if image.dtype == np.uint16:
        grey = grey / 257.0
    near = grow(mask, gap)
    around = grow(near, ring) & ~near
    background = float(np.median([grey[i, j] for i, j in zip(*np.nonzero(around))]))
    diffs = [grey[i, j] - background for i, j in zip(*np.nonzero(mask))]
    mean = sum(diffs) / len(diffs)
    contrast = abs(mean)
    polarity = 1.0 if mean >= 0 else -1.0
    spread = math.sqrt(sum((d - mean) ** 2 for d in diffs) / len(diffs))
    roughness = spread / contrast if contrast > 0 else 0.0
    dist, top = ridge(mask)
    width = max(2.0 * float(np.median([dist[i, j] for i, j in zip(*np.nonzero(top))])) - 0.5, 1.0)
    pts = list(zip(*np.nonzero(mask)))
    area = float(len(pts))
    extent = 1.0
    if len(pts) > 1:
        mr = sum(p[0] for p in pts) / area
        mc = sum(p[1] for p in pts) / area
        srr = sum((p[0] - mr) ** 2 for p in pts)
        scc = sum((p[1] - mc) ** 2 for p in pts)
        src = sum((p[0] - mr) * (p[1] - mc) for p in pts)
        # Unit eigenvector of the largest eigenvalue of [[srr, src], [src, scc]]; an isotropic
        # scatter has no principal axis: the row axis then (the column axis if it is wider).
        lam = 0.5 * (srr + scc) + math.sqrt(0.25 * (srr - scc) ** 2 + src * src)
        if abs(src) <= 1e-12 * max(srr + scc, 1.0):
            v = (1.0, 0.0) if srr >= scc else (0.0, 1.0)
        elif srr >= scc:
            v = (lam - scc, src)
        else:
            v = (src, lam - srr)
        norm = math.hypot(*v)
        proj = [((p[0] - mr) * v[0] + (p[1] - mc) * v[1]) / norm for p in pts]
        extent = max(proj) - min(proj) + 1.0
    length = max(extent, area / width)
    return area, background, contrast, polarity, width, length, extent / length, roughness
