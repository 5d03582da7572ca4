"""Numba kernels of the four-step defect synthesizer (private).

Kernels assume valid input (checked by :mod:`ispad_core.synth._synth`) and never raise.

Randomness: each item seeds Numba's Mersenne Twister with its own 32-bit seed and then draws in
the fixed order documented on :func:`synth_item`. Numba's seeded stream equals
``numpy.random.RandomState(seed)`` call for call (``random``/``random_sample``, ``uniform``,
``normal``/``standard_normal``, ``randint``), which lets ``tests/reference/synth_ref.py`` replay
the same draws in plain NumPy.

Locality: every array a defect needs lives in a *frame*, the bounding box of its skeleton padded
by the reach of the width profile and the optics blur (only zeroing the frame scales with that
box). Inside the frame, per-row spans ``lo[i]..hi[i]`` bound the texture support and every
per-pixel loop runs over them, so the work grows with the defect, not with the patch (the patch
copy, done once on the host, is the floor).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ispad_core._shared.config import NJIT, NJIT_PARALLEL
from ispad_core._shared.kernels import fade, gaussian_taps, lattice_value

# Columns of the parameter table (one row per DefectParams; see DefectParams._row). A range
# occupies two columns (low, high).
T_STEPS = 0
T_STEP_LENGTH = 2
T_MOMENTUM = 4
T_ANGULAR_SIGMA = 6
T_BRANCHES = 8
T_BRANCH_LENGTH = 10
T_BRANCH_ANGLE = 12
T_WIDTH = 14
T_TAPER = 16
T_NOISE_AMPLITUDE = 18
T_NOISE_SCALE = 20
T_BLUR = 22
T_CONTRAST = 24
T_CHANNEL_GAIN = 26
T_RELATIVE = 28
T_BRIGHT_PROBABILITY = 29
T_MULTIPLICATIVE = 30
T_CNR = 31
T_THRESHOLD = 32
T_MAX_ATTEMPTS = 33
T_MARGIN = 34
T_MASK_LEVEL = 35
T_RING = 36
T_MAX_POINTS = 37
N_COLUMNS = 38

SAMPLE_SPACING = 0.5
"""Maximum arc length (px) between two samples splatted into the anti-aliased raster."""
TRUNCATE = 3.0
"""Gaussians (width profile, blur) are cut at this many standard deviations."""
MIN_BLUR = 0.1
"""An optics blur below this standard deviation (px) is not applied."""
NOISE_FLOOR = 1.0
"""Floor (grey levels) of the background standard deviation in the contrast-to-noise ratio."""


# Columns of the per-item info array.
I_SSR = 0
I_CNR = 1
I_COMPONENT = 2
I_POINTS = 3
I_WALKS = 4
I_ROW0 = 5
I_COL0 = 6
N_INFO = 7


@njit(**NJIT)
def _uniform(p, col):
    return np.random.uniform(p[col], p[col + 1])


@njit(**NJIT)
def choose_component(cum):
    """Index of the mixture component (one ``random()`` draw, even for a single component)."""
    u = np.random.random()
    for k in range(cum.shape[0]):
        if u < cum[k]:
            return k
    return cum.shape[0] - 1


# --------------------------------------------------------------------------- step 1: skeleton


@njit(**NJIT)
def _walk(pts, heads, npts, nsteps, r, c, theta, m, sw, step, box, avail_r, avail_c):
    """Up to ``nsteps`` steps of the walk with momentum from ``(r, c)`` heading ``theta``.

    Appends the points (and their headings) at ``pts[npts:]``, growing the running bounding box
    ``box`` (rmin, rmax, cmin, cmax); stops before the first point whose box would not fit
    ``avail_r`` x ``avail_c``. One ``normal`` draw per step attempted. Returns the new ``npts``.
    """
    om = 0.0
    for _ in range(nsteps):
        om = m * om + (1.0 - m) * sw * np.random.normal()
        theta += om
        r += step * math.sin(theta)
        c += step * math.cos(theta)
        nrmin = min(box[0], r)
        nrmax = max(box[1], r)
        ncmin = min(box[2], c)
        ncmax = max(box[3], c)
        if nrmax - nrmin > avail_r or ncmax - ncmin > avail_c:
            break
        box[0] = nrmin
        box[1] = nrmax
        box[2] = ncmin
        box[3] = ncmax
        pts[npts, 0] = r
        pts[npts, 1] = c
        heads[npts] = theta
        npts += 1
    return npts


@njit(**NJIT)
def random_walk(p, h, w, pts, heads, starts):
    """Step 1: random walk with momentum, placed inside the patch minus the margin.

    Draws, in order: ``randint`` steps n, ``uniform`` step length, momentum m, sigma_w,
    heading in [0, 2 pi); then per step ``normal`` (``w = m w + (1 - m) sigma_w N``,
    ``theta += w``, ``p += step (sin theta, cos theta)`` in (row, col)); the walk stops before the
    first point whose running bounding box would not fit the patch minus the margin. Then
    ``randint`` number of branches and per branch: ``randint`` spawn vertex, ``uniform`` length
    fraction, ``uniform`` angle, ``random`` sign, and its steps as above. Last, ``uniform`` row and
    column offsets that place the bounding box inside the margin.

    Fills ``pts[:n_points]`` (row, col) and ``heads[:n_points]`` (heading at each point; ``heads``
    as long as ``pts``); walk s is ``pts[starts[s]:starts[s + 1]]`` (each branch
    starts with a copy of its spawn vertex). Returns ``(n_points, n_walks)``.
    """
    n = np.random.randint(int(p[T_STEPS]), int(p[T_STEPS + 1]) + 1)
    step = _uniform(p, T_STEP_LENGTH)
    m = _uniform(p, T_MOMENTUM)
    sw = _uniform(p, T_ANGULAR_SIGMA)
    theta = np.random.uniform(0.0, 2.0 * math.pi)
    margin = p[T_MARGIN]
    avail_r = h - 1.0 - 2.0 * margin
    avail_c = w - 1.0 - 2.0 * margin
    pts[0, 0] = 0.0
    pts[0, 1] = 0.0
    heads[0] = theta
    box = np.zeros(4)  # running bounding box of the points: rmin, rmax, cmin, cmax
    k = _walk(pts, heads, 1, n, 0.0, 0.0, theta, m, sw, step, box, avail_r, avail_c)
    starts[0] = 0
    starts[1] = k
    npts = k
    nw = 1
    nb = np.random.randint(int(p[T_BRANCHES]), int(p[T_BRANCHES + 1]) + 1)
    for _ in range(nb):
        j = np.random.randint(0, k)
        frac = _uniform(p, T_BRANCH_LENGTH)
        ang = _uniform(p, T_BRANCH_ANGLE)
        if np.random.random() < 0.5:
            ang = -ang
        nbs = int(frac * (k - 1) + 0.5)
        if nbs < 1:
            nbs = 1
        first = npts
        pts[npts, 0] = pts[j, 0]
        pts[npts, 1] = pts[j, 1]
        heads[npts] = heads[j] + ang
        npts = _walk(pts, heads, npts + 1, nbs, pts[j, 0], pts[j, 1], heads[j] + ang, m, sw, step, box, avail_r, avail_c)
        if npts - first < 2:
            npts = first
        else:
            nw += 1
            starts[nw] = npts
    rmin, rmax, cmin, cmax = box[0], box[1], box[2], box[3]
    off_r = np.random.uniform(margin - rmin, h - 1.0 - margin - rmax)
    off_c = np.random.uniform(margin - cmin, w - 1.0 - margin - cmax)
    for i in range(npts):
        pts[i, 0] = min(max(pts[i, 0] + off_r, margin), h - 1.0 - margin)
        pts[i, 1] = min(max(pts[i, 1] + off_c, margin), w - 1.0 - margin)
    return npts, nw


@njit(**NJIT)
def _splat_point(raster, y, x, wt, rlo, rhi):
    i0 = int(math.floor(y))
    j0 = int(math.floor(x))
    fy = y - i0
    fx = x - j0
    a = wt * (1.0 - fy)
    b = wt * fy
    raster[i0, j0] += a * (1.0 - fx)
    raster[i0, j0 + 1] += a * fx
    raster[i0 + 1, j0] += b * (1.0 - fx)
    raster[i0 + 1, j0 + 1] += b * fx
    for i in range(i0, i0 + 2):
        if j0 < rlo[i]:
            rlo[i] = j0
        if j0 + 1 > rhi[i]:
            rhi[i] = j0 + 1


@njit(**NJIT)
def splat(pts, starts, nw, taper, raster, r0, c0, rlo, rhi):
    """Anti-aliased raster of the walks (frame coordinates, origin ``(r0, c0)``).

    Each segment of length L is sampled at ``n = max(ceil(L / 0.5), 1)`` evenly spaced midpoints
    ``t = (q + 0.5) / n`` of weight ``L / n`` times the taper ``(4 s (1 - s))**taper`` at the
    arc-length fraction s of the segment's midpoint in its walk; each sample is splatted
    bilinearly onto its four neighbours, so the ink per px of length is 1 whatever the direction. A walk without
    length is one sample of weight 1. ``rlo``/``rhi`` receive (loose) row spans of the raster.
    """
    for s in range(nw):
        a = starts[s]
        b = starts[s + 1]
        total = 0.0
        for i in range(a, b - 1):
            dy = pts[i + 1, 0] - pts[i, 0]
            dx = pts[i + 1, 1] - pts[i, 1]
            total += math.sqrt(dy * dy + dx * dx)
        if total <= 0.0:
            _splat_point(raster, pts[a, 0] - r0, pts[a, 1] - c0, 1.0, rlo, rhi)
            continue
        cum = 0.0
        for i in range(a, b - 1):
            dy = pts[i + 1, 0] - pts[i, 0]
            dx = pts[i + 1, 1] - pts[i, 1]
            seg = math.sqrt(dy * dy + dx * dx)
            ns = max(int(math.ceil(seg / SAMPLE_SPACING)), 1)
            wt = seg / ns
            if taper > 0.0:
                sa = (cum + 0.5 * seg) / total
                wt *= (4.0 * sa * (1.0 - sa)) ** taper
            for q in range(ns):
                t = (q + 0.5) / ns
                _splat_point(raster, pts[i, 0] + t * dy - r0, pts[i, 1] + t * dx - c0, wt, rlo, rhi)
            cum += seg


@njit(**NJIT)
def points_bbox(pts, npts):
    """(floor of min row, floor of max row, floor of min col, floor of max col)."""
    rmin = pts[0, 0]
    rmax = pts[0, 0]
    cmin = pts[0, 1]
    cmax = pts[0, 1]
    for i in range(1, npts):
        rmin = min(rmin, pts[i, 0])
        rmax = max(rmax, pts[i, 0])
        cmin = min(cmin, pts[i, 1])
        cmax = max(cmax, pts[i, 1])
    return (
        int(math.floor(rmin)),
        int(math.floor(rmax)),
        int(math.floor(cmin)),
        int(math.floor(cmax)),
    )


@njit(**NJIT)
def chain_pixels(pts, starts, nw, out, out_starts):
    """The binary skeleton: per walk, an 8-connected pixel chain through the rounded vertices.

    Consecutive rounded vertices are joined by Bresenham lines; repeated pixels are dropped.
    Returns the number of pixels written to ``out`` (row, col); walk s is
    ``out[out_starts[s]:out_starts[s + 1]]``.
    """
    n = 0
    out_starts[0] = 0
    for s in range(nw):
        a = starts[s]
        b = starts[s + 1]
        r = int(math.floor(pts[a, 0] + 0.5))
        c = int(math.floor(pts[a, 1] + 0.5))
        out[n, 0] = r
        out[n, 1] = c
        n += 1
        for i in range(a + 1, b):
            r1 = int(math.floor(pts[i, 0] + 0.5))
            c1 = int(math.floor(pts[i, 1] + 0.5))
            dr = abs(r1 - r)
            dc = abs(c1 - c)
            sr = 1 if r1 > r else -1
            sc = 1 if c1 > c else -1
            err = dc - dr
            while r != r1 or c != c1:
                e2 = 2 * err
                if e2 > -dr:
                    err -= dr
                    c += sc
                if e2 < dc:
                    err += dc
                    r += sr
                out[n, 0] = r
                out[n, 1] = c
                n += 1
        out_starts[s + 1] = n
    return n


# --------------------------------------------------------------------------- step 2: texture


@njit(**NJIT)
def spread(raster, rlo, rhi, g, radius, tex, lo, hi):
    """``tex += raster (*) (g g^T)``, the separable Gaussian width profile, on the support only.

    A horizontal pass scatters every positive raster pixel along its row into a buffer; a vertical
    pass scatters every positive buffer pixel along its column into ``tex`` and widens the row
    spans ``lo``/``hi``. The support is the union of ``(2 radius + 1)^2`` squares around the
    positive raster pixels.
    """
    fh, fw = raster.shape
    rows = np.zeros((fh, fw))
    for i in range(fh):
        if rhi[i] < rlo[i]:
            continue
        for j in range(rlo[i], rhi[i] + 1):
            v = raster[i, j]
            if v > 0.0:
                for k in range(-radius, radius + 1):
                    rows[i, j + k] += v * g[k + radius]
    for i in range(fh):
        if rhi[i] < rlo[i]:
            continue
        a = rlo[i] - radius
        b = rhi[i] + radius
        for k in range(-radius, radius + 1):
            row = i + k
            if a < lo[row]:
                lo[row] = a
            if b > hi[row]:
                hi[row] = b
        for j in range(a, b + 1):
            v = rows[i, j]
            if v > 0.0:
                for k in range(-radius, radius + 1):
                    tex[i + k, j] += v * g[k + radius]


@njit(**NJIT)
def modulate(tex, lo, hi, amplitude, cell, key):
    """Multiply the support by ``1 - a + a u``: u value noise in [0, 1] on a lattice of ``cell`` px.

    u interpolates hashed lattice values (:func:`lattice_value`; node (a, b) sits at frame pixel
    (a cell, b cell)) with smoothstep weights, so only the nodes the support needs are computed.
    """
    base = 1.0 - amplitude
    for i in range(tex.shape[0]):
        if hi[i] < lo[i]:
            continue
        gy = i / cell
        i0 = int(gy)
        sy = fade(gy - i0)
        last = -2
        a0 = 0.0
        a1 = 0.0
        for j in range(lo[i], hi[i] + 1):
            t = tex[i, j]
            if t > 0.0:
                gx = j / cell
                j0 = int(gx)
                if j0 != last:
                    if j0 == last + 1:
                        a0 = a1
                    else:
                        top = lattice_value(key, i0, j0)
                        a0 = top + sy * (lattice_value(key, i0 + 1, j0) - top)
                    top = lattice_value(key, i0, j0 + 1)
                    a1 = top + sy * (lattice_value(key, i0 + 1, j0 + 1) - top)
                    last = j0
                u = a0 + fade(gx - j0) * (a1 - a0)
                tex[i, j] = t * (base + amplitude * u)


@njit(**NJIT)
def blur(tex, lo, hi, sigma, radius):
    """Separable Gaussian blur (optics) of the support, in place; widens the spans by ``radius``."""
    fh, fw = tex.shape
    g = gaussian_taps(sigma, radius, True)
    rows = np.zeros((fh, fw))
    for i in range(fh):
        if hi[i] < lo[i]:
            continue
        for j in range(lo[i] - radius, hi[i] + radius + 1):
            acc = 0.0
            for k in range(-radius, radius + 1):
                jj = j + k
                if lo[i] <= jj <= hi[i]:
                    acc += g[k + radius] * tex[i, jj]
            rows[i, j] = acc
    lo2 = np.full(fh, fw, np.int64)
    hi2 = np.full(fh, -1, np.int64)
    for i in range(fh):
        if hi[i] < lo[i]:
            continue
        for j in range(lo[i], hi[i] + 1):
            tex[i, j] = 0.0
    for i in range(fh):
        if hi[i] < lo[i]:
            continue
        a = lo[i] - radius
        b = hi[i] + radius
        for k in range(-radius, radius + 1):
            row = i + k
            if a < lo2[row]:
                lo2[row] = a
            if b > hi2[row]:
                hi2[row] = b
            gk = g[k + radius]
            for j in range(a, b + 1):
                tex[row, j] += gk * rows[i, j]
    for i in range(fh):
        lo[i] = lo2[i]
        hi[i] = hi2[i]


@njit(**NJIT)
def normalise(tex, lo, hi):
    """Divide the support by its maximum and tighten the spans to the first and last positive pixel
    of each row (empty rows get ``lo = width``, ``hi = -1``). Returns the maximum."""
    fw = tex.shape[1]
    tmax = 0.0
    for i in range(tex.shape[0]):
        for j in range(lo[i], hi[i] + 1):
            if tex[i, j] > tmax:
                tmax = tex[i, j]
    for i in range(tex.shape[0]):
        a = fw
        b = -1
        for j in range(lo[i], hi[i] + 1):
            if tex[i, j] > 0.0:
                tex[i, j] /= tmax
                if a == fw:
                    a = j
                b = j
        lo[i] = a
        hi[i] = b
    return tmax


@njit(**NJIT)
def texture(p, pts, starts, nw, npts):
    """Step 2. Draws, in order: ``uniform`` width sigma, taper, noise amplitude, noise cell, blur,
    then ``randint(0, 2**31)`` the noise key.

    Returns ``(tex, lo, hi, r0, c0)``: the texture normalised to [0, 1] on the frame whose pixel
    (0, 0) is patch pixel ``(r0, c0)`` (it may reach past the patch), and its tight row spans.
    """
    sigma = _uniform(p, T_WIDTH)
    taper = _uniform(p, T_TAPER)
    namp = _uniform(p, T_NOISE_AMPLITUDE)
    ncell = _uniform(p, T_NOISE_SCALE)
    sblur = _uniform(p, T_BLUR)
    key = np.random.randint(0, 2**31)
    rs = int(math.ceil(TRUNCATE * sigma))
    rb = int(math.ceil(TRUNCATE * sblur)) if sblur >= MIN_BLUR else 0
    pad = rs + rb
    rmin, rmax, cmin, cmax = points_bbox(pts, npts)
    r0 = rmin - pad
    c0 = cmin - pad
    fh = rmax - rmin + 2 + 2 * pad
    fw = cmax - cmin + 2 + 2 * pad
    raster = np.zeros((fh, fw))
    rlo = np.full(fh, fw, np.int64)
    rhi = np.full(fh, -1, np.int64)
    splat(pts, starts, nw, taper, raster, r0, c0, rlo, rhi)
    tex = np.zeros((fh, fw))
    lo = np.full(fh, fw, np.int64)
    hi = np.full(fh, -1, np.int64)
    spread(raster, rlo, rhi, gaussian_taps(sigma, rs, False), rs, tex, lo, hi)
    if namp > 0.0:
        modulate(tex, lo, hi, namp, ncell, key)
    if rb > 0:
        blur(tex, lo, hi, sblur, rb)
    normalise(tex, lo, hi)
    return tex, lo, hi, r0, c0


# --------------------------------------------------------------------------- steps 3 and 4


@njit(**NJIT)
def ring_stats(img, h, w, nch, tex, lo, hi, r0, c0, ring):
    """Mean and standard deviation (dtype units) of the grey level (mean over channels) of the
    background ring: patch pixels within ``ring`` px of a support row span, i.e. in
    ``[min lo - ring, max hi + ring]`` over the support rows ``i - ring .. i + ring``, that are not
    in the support. Returns ``(mean, std, count)``."""
    fh, fw = tex.shape
    top = fh
    bottom = -1
    for i in range(fh):
        if hi[i] >= lo[i]:
            if top == fh:
                top = i
            bottom = i
    s1 = 0.0
    s2 = 0.0
    nr = 0
    for i in range(top - ring, bottom + ring + 1):
        y = r0 + i
        if y < 0 or y >= h:
            continue
        a = 1 << 30
        b = -(1 << 30)
        for k in range(max(top, i - ring), min(bottom, i + ring) + 1):
            if hi[k] >= lo[k]:
                a = min(a, lo[k])
                b = max(b, hi[k])
        if b < a:
            continue
        inside = 0 <= i < fh
        for j in range(max(a - ring, -c0), min(b + ring + 1, w - c0)):
            if inside and lo[i] <= j <= hi[i] and tex[i, j] > 0.0:
                continue
            base = (y * w + c0 + j) * nch
            v = 0.0
            for ch in range(nch):
                v += img[base + ch]
            v /= nch
            s1 += v
            s2 += v * v
            nr += 1
    if nr == 0:
        return 0.0, 0.0, 0
    mean = s1 / nr
    return mean, math.sqrt(max(s2 / nr - mean * mean, 0.0)), nr


@njit(**NJIT)
def modify(img, h, w, nch, tex, lo, hi, r0, c0, p, maxval, scale, newvals, gains):
    """Steps 3 (into ``newvals``; the patch is untouched) and 4 (both measures).

    Draws, in order: ``random`` polarity (bright if below the bright probability), ``uniform``
    contrast, and for colour patches one ``uniform`` gain per channel. The local background level
    and noise come from :func:`ring_stats`. Returns ``(ssr, cnr, n_mask)``.
    """
    sign = 1.0 if np.random.random() < p[T_BRIGHT_PROBABILITY] else -1.0
    con = _uniform(p, T_CONTRAST)
    if nch > 1:
        for ch in range(nch):
            gains[ch] = _uniform(p, T_CHANNEL_GAIN)
    else:
        gains[0] = 1.0
    level, std, n_ring = ring_stats(img, h, w, nch, tex, lo, hi, r0, c0, int(p[T_RING]))
    if n_ring == 0:
        level = 0.5 * maxval
    level = max(level, scale)
    if p[T_RELATIVE] > 0.0:
        amp = con * level
    else:
        amp = con * scale
    gm = amp / level
    multiplicative = p[T_MULTIPLICATIVE] > 0.0
    mask_level = p[T_MASK_LEVEL]
    fh, fw = tex.shape
    ssr = 0.0
    sum_abs = 0.0
    n_mask = 0
    if nch == 1:
        # The same arithmetic as the general loop below, without the channel loop.
        k_add = sign * amp * gains[0]
        k_mul = sign * gm * gains[0]
        for i in range(max(0, -r0), min(fh, h - r0)):
            row = (r0 + i) * w + c0
            for j in range(max(lo[i], -c0), min(hi[i] + 1, w - c0)):
                t = tex[i, j]
                if t <= 0.0:
                    continue
                v = float(img[row + j])
                if multiplicative:
                    nv = v * (1.0 + k_mul * t)
                else:
                    nv = v + k_add * t
                nv = math.floor(nv + 0.5)
                if nv < 0.0:
                    nv = 0.0
                elif nv > maxval:
                    nv = maxval
                newvals[i * fw + j] = nv
                d = (nv - v) / scale
                ssr += d * d
                if nv != v and t >= mask_level:
                    sum_abs += abs(d)
                    n_mask += 1
        if n_mask == 0:
            return ssr, 0.0, 0
        return ssr, (sum_abs / n_mask) / max(std / scale, NOISE_FLOOR), n_mask
    for i in range(max(0, -r0), min(fh, h - r0)):
        y = r0 + i
        for j in range(max(lo[i], -c0), min(hi[i] + 1, w - c0)):
            t = tex[i, j]
            if t <= 0.0:
                continue
            base = (y * w + c0 + j) * nch
            sq = 0.0
            ab = 0.0
            changed = False
            for ch in range(nch):
                v = float(img[base + ch])
                if multiplicative:
                    nv = v * (1.0 + sign * gm * gains[ch] * t)
                else:
                    nv = v + sign * amp * gains[ch] * t
                nv = math.floor(nv + 0.5)
                if nv < 0.0:
                    nv = 0.0
                elif nv > maxval:
                    nv = maxval
                newvals[(i * fw + j) * nch + ch] = nv
                d = (nv - v) / scale
                sq += d * d
                ab += abs(d)
                if nv != v:
                    changed = True
            ssr += sq / nch
            if changed and t >= mask_level:
                sum_abs += ab / nch
                n_mask += 1
    if n_mask == 0:
        return ssr, 0.0, 0
    cnr = (sum_abs / n_mask) / max(std / scale, NOISE_FLOOR)
    return ssr, cnr, n_mask


@njit(**NJIT)
def commit(img, mask, h, w, nch, tex, lo, hi, r0, c0, mask_level, newvals):
    """Write the modified support into the patch and mark changed pixels at or above the level."""
    fh, fw = tex.shape
    for i in range(max(0, -r0), min(fh, h - r0)):
        y = r0 + i
        for j in range(max(lo[i], -c0), min(hi[i] + 1, w - c0)):
            t = tex[i, j]
            if t <= 0.0:
                continue
            pix = y * w + c0 + j
            changed = False
            for ch in range(nch):
                nv = newvals[(i * fw + j) * nch + ch]
                if nv != img[pix * nch + ch]:
                    changed = True
                    img[pix * nch + ch] = nv
            if changed and t >= mask_level:
                mask[pix] = 1


@njit(**NJIT)
def synth_item(img, mask, h, w, nch, seed, table, cum, maxval, scale, debug, tex_out, pts_out,
               starts_out, info):
    """One defect into ``img`` (flat (h * w * nch,), modified in place only when accepted).

    Draw order: ``np.random.seed(seed)``; one ``random`` for the mixture component; then per
    attempt the draws of :func:`random_walk`, :func:`texture` and :func:`modify`. Returns
    ``(visibility, accepted, attempts)``; ``info`` receives both measures and the component. With
    ``debug``, the last attempt's texture (patch coordinates) goes to ``tex_out`` (h, w) and its
    walks to ``pts_out``/``starts_out``.
    """
    np.random.seed(seed)
    comp = choose_component(cum)
    p = table[comp]
    pts = np.empty((int(p[T_MAX_POINTS]), 2))
    heads = np.empty(pts.shape[0])  # heading at every point (branches spawn from the main walk's)
    starts = np.empty(int(p[T_BRANCHES + 1]) + 2, np.int64)
    gains = np.empty(nch)
    info[I_COMPONENT] = comp
    vis = 0.0
    accepted = False
    attempts = 0
    for attempt in range(1, int(p[T_MAX_ATTEMPTS]) + 1):
        attempts = attempt
        npts, nw = random_walk(p, h, w, pts, heads, starts)
        tex, lo, hi, r0, c0 = texture(p, pts, starts, nw, npts)
        newvals = np.empty(tex.shape[0] * tex.shape[1] * nch)
        ssr, cnr, n_mask = modify(img, h, w, nch, tex, lo, hi, r0, c0, p, maxval, scale, newvals, gains)
        vis = cnr if p[T_CNR] > 0.0 else ssr
        accepted = n_mask > 0 and vis >= p[T_THRESHOLD]
        info[I_SSR] = ssr
        info[I_CNR] = cnr
        if debug:
            info[I_POINTS] = npts
            info[I_WALKS] = nw
            info[I_ROW0] = r0
            info[I_COL0] = c0
            for i in range(npts):
                pts_out[i, 0] = pts[i, 0]
                pts_out[i, 1] = pts[i, 1]
            for s in range(nw + 1):
                starts_out[s] = starts[s]
            for y in range(h):
                for x in range(w):
                    tex_out[y, x] = 0.0
            fh, fw = tex.shape
            for i in range(max(0, -r0), min(fh, h - r0)):
                for j in range(max(0, -c0), min(fw, w - c0)):
                    tex_out[r0 + i, c0 + j] = tex[i, j]
        if accepted:
            commit(img, mask, h, w, nch, tex, lo, hi, r0, c0, p[T_MASK_LEVEL], newvals)
            break
    return vis, accepted, attempts


@njit(**NJIT_PARALLEL)
def synth_batch(images, masks, h, w, nch, seeds, defective, table, cum, maxval, scale,
                vis, accepted, attempts, info, debug, tex_out, pts_out, starts_out):
    """Items in parallel; item i touches only row i of every output (``images`` already copies).

    ``images`` (N, h * w * nch) uint8/uint16 C-contiguous, ``masks`` (N, h * w) uint8 zeros.
    With ``debug`` (N must be 1) ``tex_out`` (1, h, w), ``pts_out`` (1, P, 2) and ``starts_out``
    (1, B) receive the last attempt; otherwise they are unused placeholders.
    """
    for i in prange(images.shape[0]):
        if not defective[i]:
            continue
        v, a, t = synth_item(
            images[i], masks[i], h, w, nch, seeds[i], table, cum, maxval, scale,
            debug, tex_out[0], pts_out[0], starts_out[0], info[i],
        )
        vis[i] = v
        accepted[i] = a
        attempts[i] = t


@njit(**NJIT)
def synth_serial(images, masks, h, w, nch, seeds, defective, table, cum, maxval, scale,
                 vis, accepted, attempts, info, debug, tex_out, pts_out, starts_out):
    """:func:`synth_batch` without threads, for a single item (a parallel launch costs far more
    than one small defect when the other cores are busy)."""
    for i in range(images.shape[0]):
        if not defective[i]:
            continue
        v, a, t = synth_item(
            images[i], masks[i], h, w, nch, seeds[i], table, cum, maxval, scale,
            debug, tex_out[0], pts_out[0], starts_out[0], info[i],
        )
        vis[i] = v
        accepted[i] = a
        attempts[i] = t


@njit(**NJIT)
def skeleton_raster(pts, starts, nw, npts, h, w, raster_out):
    """The untapered anti-aliased raster of the walks, written into ``raster_out`` (h, w) zeros."""
    rmin, rmax, cmin, cmax = points_bbox(pts, npts)
    fh = rmax - rmin + 2
    fw = cmax - cmin + 2
    raster = np.zeros((fh, fw))
    rlo = np.full(fh, fw, np.int64)
    rhi = np.full(fh, -1, np.int64)
    splat(pts, starts, nw, 0.0, raster, rmin, cmin, rlo, rhi)
    for i in range(fh):
        for j in range(fw):
            y = rmin + i
            x = cmin + j
            if y < h and x < w:
                raster_out[y, x] = raster[i, j]


@njit(**NJIT)
def skeleton(h, w, seed, table, cum, pts_out, starts_out):
    """Step 1 alone, with exactly the draws :func:`synth_item` makes first (so the same seed gives
    the skeleton of its first attempt). Returns ``(n_points, n_walks, component)``."""
    np.random.seed(seed)
    comp = choose_component(cum)
    p = table[comp]
    heads = np.empty(pts_out.shape[0])
    npts, nw = random_walk(p, h, w, pts_out, heads, starts_out)
    return npts, nw, comp
