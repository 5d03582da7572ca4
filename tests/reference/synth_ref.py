"""Slow reference of the four-step synthesizer, written from the definitions in docs/synthesis.md.

It reads the parameters by field name (not the kernel's table), replays the kernel's draws with
``numpy.random.RandomState(seed)`` (Numba's seeded stream is the same Mersenne Twister, call for
call), and computes every step on whole frames with plain NumPy: the texture as an explicit sum of
Gaussian stamps, the blur as a zero-padded convolution, the ring and the measures with masks.
Skeletons must match the kernel exactly; images within one grey level (the texture sums run in
another order).
"""

from __future__ import annotations

import math

import numpy as np

from ispad_core.synth import DefectMixture, DefectParams

SAMPLE_SPACING = 0.5
TRUNCATE = 3.0
NOISE_FLOOR = 1.0
MASK64 = (1 << 64) - 1


def _uniform(rs, pair):
    return rs.uniform(pair[0], pair[1])


def component(rs, params):
    """Draw the mixture component (one random_sample, even for a single DefectParams)."""
    u = rs.random_sample()
    if isinstance(params, DefectParams):
        return 0, params
    cum = np.cumsum(np.asarray(params.weights, dtype=np.float64))
    cum /= cum[-1]
    cum[-1] = 1.0
    for k, c in enumerate(cum):
        if u < c:
            return k, params.components[k]
    return len(cum) - 1, params.components[-1]


def _fits(points, avail_r, avail_c):
    arr = np.asarray(points)
    return np.ptp(arr[:, 0]) <= avail_r and np.ptp(arr[:, 1]) <= avail_c


def walk(rs, p: DefectParams, h: int, w: int):
    """Step 1 -> list of walks, each a list of (row, col) points placed inside the margin."""
    n = rs.randint(p.steps[0], p.steps[1] + 1)
    step = _uniform(rs, p.step_length)
    m = _uniform(rs, p.momentum)
    sw = _uniform(rs, p.angular_sigma)
    theta = rs.uniform(0.0, 2.0 * math.pi)
    margin = float(p.margin)
    avail_r = h - 1.0 - 2.0 * margin
    avail_c = w - 1.0 - 2.0 * margin
    main = [(0.0, 0.0)]
    heads = [theta]
    om = 0.0
    r = c = 0.0
    for _ in range(n):
        om = m * om + (1.0 - m) * sw * rs.normal()
        theta += om
        r += step * math.sin(theta)
        c += step * math.cos(theta)
        if not _fits(main + [(r, c)], avail_r, avail_c):
            break
        main.append((r, c))
        heads.append(theta)
    walks = [main]
    everything = list(main)
    k = len(main)
    nb = rs.randint(p.branches[0], p.branches[1] + 1)
    for _ in range(nb):
        j = rs.randint(0, k)
        frac = _uniform(rs, p.branch_length)
        ang = _uniform(rs, p.branch_angle)
        if rs.random_sample() < 0.5:
            ang = -ang
        nbs = max(int(frac * (k - 1) + 0.5), 1)
        th = heads[j] + ang
        om = 0.0
        r, c = main[j]
        branch = [(r, c)]
        for _ in range(nbs):
            om = m * om + (1.0 - m) * sw * rs.normal()
            th += om
            r += step * math.sin(th)
            c += step * math.cos(th)
            if not _fits(everything + branch + [(r, c)], avail_r, avail_c):
                break
            branch.append((r, c))
        if len(branch) >= 2:
            walks.append(branch)
            everything += branch
    arr = np.asarray(everything)
    off_r = rs.uniform(margin - arr[:, 0].min(), h - 1.0 - margin - arr[:, 0].max())
    off_c = rs.uniform(margin - arr[:, 1].min(), w - 1.0 - margin - arr[:, 1].max())
    placed = []
    for wk in walks:
        placed.append(
            [
                (min(max(y + off_r, margin), h - 1.0 - margin), min(max(x + off_c, margin), w - 1.0 - margin))
                for y, x in wk
            ]
        )
    return placed


def samples(walk_points, taper):
    """Raster samples (row, col, weight) of one walk, as defined for the anti-aliased raster."""
    pts = np.asarray(walk_points, dtype=np.float64)
    seglens = [math.sqrt((pts[i + 1, 0] - pts[i, 0]) ** 2 + (pts[i + 1, 1] - pts[i, 1]) ** 2) for i in range(len(pts) - 1)]
    total = sum(seglens) if seglens else 0.0
    if total <= 0.0:
        return [(pts[0, 0], pts[0, 1], 1.0)]
    out = []
    cum = 0.0
    for i, seg in enumerate(seglens):
        dy = pts[i + 1, 0] - pts[i, 0]
        dx = pts[i + 1, 1] - pts[i, 1]
        ns = max(int(math.ceil(seg / SAMPLE_SPACING)), 1)
        wt = seg / ns
        if taper > 0.0:
            sa = (cum + 0.5 * seg) / total
            wt *= (4.0 * sa * (1.0 - sa)) ** taper
        for q in range(ns):
            t = (q + 0.5) / ns
            out.append((pts[i, 0] + t * dy, pts[i, 1] + t * dx, wt))
        cum += seg
    return out


def raster(walks, taper, shape, origin):
    """Bilinear splats of every sample into a zero array of ``shape`` whose (0, 0) is ``origin``."""
    out = np.zeros(shape)
    for wk in walks:
        for y, x, wt in samples(wk, taper):
            y -= origin[0]
            x -= origin[1]
            i0 = math.floor(y)
            j0 = math.floor(x)
            fy = y - i0
            fx = x - j0
            out[i0, j0] += wt * (1 - fy) * (1 - fx)
            out[i0, j0 + 1] += wt * (1 - fy) * fx
            out[i0 + 1, j0] += wt * fy * (1 - fx)
            out[i0 + 1, j0 + 1] += wt * fy * fx
    return out


def lattice_value(key, a, b):
    """splitmix64 of the node, with Python ints."""
    z = (key * 0xD1B54A32D192ED03 + a * 0xABC98388FB8FAC03 + b + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


def _fade(t):
    return t * t * (3.0 - 2.0 * t)


def value_noise(shape, cell, key):
    """u(i, j) on a whole frame: smoothstep interpolation of hashed lattice values."""
    h, w = shape
    u = np.empty(shape)
    for i in range(h):
        gy = i / cell
        i0 = int(gy)
        sy = _fade(gy - i0)
        for j in range(w):
            gx = j / cell
            j0 = int(gx)
            left = lattice_value(key, i0, j0)
            left = left + sy * (lattice_value(key, i0 + 1, j0) - left)
            right = lattice_value(key, i0, j0 + 1)
            right = right + sy * (lattice_value(key, i0 + 1, j0 + 1) - right)
            u[i, j] = left + _fade(gx - j0) * (right - left)
    return u


def gaussian_blur(x, sigma, radius):
    """Zero-padded separable convolution with the normalised, truncated Gaussian."""
    g = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2.0 * sigma * sigma))
    g /= g.sum()
    pad = np.pad(x, radius)
    rows = sum(g[k] * pad[:, k : k + x.shape[1]] for k in range(2 * radius + 1))[radius:-radius]
    rows = np.pad(rows, ((radius, radius), (0, 0)))
    return sum(g[k] * rows[k : k + x.shape[0], :] for k in range(2 * radius + 1))


def texture(rs, p: DefectParams, walks):
    """Step 2 -> (tex, (r0, c0)) on the frame."""
    sigma = _uniform(rs, p.width)
    taper = _uniform(rs, p.taper)
    namp = _uniform(rs, p.noise_amplitude)
    ncell = _uniform(rs, p.noise_scale)
    sblur = _uniform(rs, p.blur)
    key = rs.randint(0, 2**31)
    radius = int(math.ceil(TRUNCATE * sigma))
    rb = int(math.ceil(TRUNCATE * sblur)) if sblur >= 0.1 else 0
    pad = radius + rb
    allpts = np.asarray([pt for wk in walks for pt in wk])
    rmin, cmin = np.floor(allpts.min(axis=0)).astype(int)
    rmax, cmax = np.floor(allpts.max(axis=0)).astype(int)
    r0, c0 = rmin - pad, cmin - pad
    shape = (rmax - rmin + 2 + 2 * pad, cmax - cmin + 2 + 2 * pad)
    ras = raster(walks, taper, shape, (r0, c0))
    g = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2.0 * sigma * sigma))
    stamp = np.outer(g, g)
    tex = np.zeros(shape)
    for i, j in zip(*np.nonzero(ras > 0)):
        tex[i - radius : i + radius + 1, j - radius : j + radius + 1] += ras[i, j] * stamp
    if namp > 0:
        tex = np.where(tex > 0, tex * (1.0 - namp + namp * value_noise(shape, ncell, key)), 0.0)
    if rb > 0:
        tex = gaussian_blur(tex, sblur, rb)
    return tex / tex.max(), (r0, c0)


def ring_pixels(support, h, w, r0, c0, ring):
    """Boolean (h, w) ring: patch pixels within `ring` of a support row span (rows i +- ring), not
    in the support. ``support`` is the frame's support (it may reach past the patch)."""
    fh, fw = support.shape
    rows_with = [i for i in range(fh) if support[i].any()]
    lo = {i: int(np.argmax(support[i])) for i in rows_with}
    hi = {i: fw - 1 - int(np.argmax(support[i, ::-1])) for i in rows_with}
    top, bottom = rows_with[0], rows_with[-1]
    out = np.zeros((h, w), dtype=bool)
    for i in range(top - ring, bottom + ring + 1):
        window = [k for k in rows_with if abs(k - i) <= ring]
        if not window:
            continue
        a = min(lo[k] for k in window) - ring
        b = max(hi[k] for k in window) + ring
        y = r0 + i
        if not 0 <= y < h:
            continue
        for j in range(a, b + 1):
            x = c0 + j
            if 0 <= x < w and not (0 <= i < fh and 0 <= j < fw and support[i, j]):
                out[y, x] = True
    return out


def modify(rs, p: DefectParams, img, tex, origin, maxval, scale):
    """Steps 3 and 4 -> (new image, mask, ssr, cnr)."""
    h, w, nch = img.shape
    sign = 1.0 if rs.random_sample() < p.bright_probability else -1.0
    con = _uniform(rs, p.contrast)
    gains = np.array([_uniform(rs, p.channel_gain) for _ in range(nch)]) if nch > 1 else np.ones(1)
    r0, c0 = origin
    support = tex > 0
    grey = img.astype(np.float64).mean(axis=2)
    ring = ring_pixels(support, h, w, r0, c0, p.ring)
    if ring.any():
        level, std = grey[ring].mean(), grey[ring].std()
    else:
        level, std = 0.5 * maxval, 0.0
    level = max(level, scale)
    amp = con * level if p.contrast_mode == "relative" else con * scale
    gm = amp / level
    # The texture in patch coordinates (frame cropped to the patch).
    t = np.zeros((h, w))
    fy0, fx0 = max(0, -r0), max(0, -c0)
    fy1, fx1 = min(tex.shape[0], h - r0), min(tex.shape[1], w - c0)
    t[r0 + fy0 : r0 + fy1, c0 + fx0 : c0 + fx1] = tex[fy0:fy1, fx0:fx1]
    sup = t > 0
    v = img.astype(np.float64)
    tt = t[..., None]
    if p.blend == "multiplicative":
        nv = v * (1.0 + sign * gm * gains * tt)
    else:
        nv = v + sign * amp * gains * tt
    nv = np.clip(np.floor(nv + 0.5), 0.0, maxval)
    nv = np.where(sup[..., None], nv, v)
    d = (nv - v) / scale
    ssr = float(((d**2).sum(axis=2) / nch)[sup].sum())
    changed = (nv != v).any(axis=2)
    mask = changed & (t >= p.mask_level)
    if not mask.any():
        return nv, mask, ssr, 0.0
    mean_abs = (np.abs(d).sum(axis=2) / nch)[mask].mean()
    cnr = float(mean_abs / max(std / scale, NOISE_FLOOR))
    return nv, mask, ssr, cnr


def synthesize(patch, params, seed):
    """The reference of ``ispad_core.synth.synthesize_steps`` for one seed. Returns a dict."""
    img = patch if patch.ndim == 3 else patch[..., None]
    h, w = img.shape[:2]
    maxval, scale = (255.0, 1.0) if patch.dtype == np.uint8 else (65535.0, 257.0)
    rs = np.random.RandomState(seed)
    k, p = component(rs, params)
    for attempt in range(1, p.max_attempts + 1):
        walks = walk(rs, p, h, w)
        tex, origin = texture(rs, p, walks)
        nv, mask, ssr, cnr = modify(rs, p, img, tex, origin, maxval, scale)
        vis = cnr if p.visibility == "cnr" else ssr
        accepted = bool(mask.any() and vis >= p.threshold)
        if accepted:
            break
    image = nv.astype(patch.dtype) if accepted else img.copy()
    if patch.ndim == 2:
        image = image[..., 0]
    return {
        "image": image,
        "mask": (mask if accepted else np.zeros_like(mask)).astype(np.uint8),
        "visibility": vis,
        "accepted": accepted,
        "attempts": attempt,
        "ssr": ssr,
        "cnr": cnr,
        "component": k,
        "walks": walks,
        "texture": tex,
        "origin": origin,
    }


def first_walks(shape, params, seed):
    """The reference of ``random_walk_skeleton``: the walks of the first attempt."""
    rs = np.random.RandomState(seed)
    _, p = component(rs, params)
    return walk(rs, p, shape[0], shape[1])


def chain(walk_points):
    """8-connected pixel chain through the rounded vertices (Bresenham), written from the definition."""
    pix = [(math.floor(walk_points[0][0] + 0.5), math.floor(walk_points[0][1] + 0.5))]
    for y, x in walk_points[1:]:
        r1, c1 = math.floor(y + 0.5), math.floor(x + 0.5)
        r, c = pix[-1]
        dr, dc = abs(r1 - r), abs(c1 - c)
        sr, sc = (1 if r1 > r else -1), (1 if c1 > c else -1)
        err = dc - dr
        while (r, c) != (r1, c1):
            e2 = 2 * err
            if e2 > -dr:
                err -= dr
                c += sc
            if e2 < dc:
                err += dc
                r += sr
            pix.append((r, c))
    return pix


__all__ = ["DefectMixture", "chain", "first_walks", "synthesize"]
