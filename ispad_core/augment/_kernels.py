"""Numba kernels behind :mod:`ispad_core.augment`.

Every kernel assumes valid, already converted input (the public wrappers check it) and never
raises. Images are ``(H, W, C)`` arrays of uint8 or uint16 (grey images with ``C = 1``); masks
are ``(H, W)`` uint8. A 2 x 3 ``matrix`` maps an output pixel ``(r, c)`` to the input position
``(m00 r + m01 c + m02, m10 r + m11 c + m12)`` (rows, columns), scipy.ndimage's convention.
Positions outside the image are reflected without repeating the edge pixel (scipy's ``mirror``,
OpenCV's ``BORDER_REFLECT_101``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ispad_core._shared.config import NJIT, NJIT_EXACT_FMA, NJIT_PARALLEL

# Positions run in fixed point: 32 fractional bits in an int64, so their magnitude must stay
# below 2**31 pixels; the public wrappers only pass matrices that keep them within this limit.
POSITION_LIMIT = 2.0**30


@njit(**NJIT)
def reflect_index(i, n):  # pragma: no cover - compiled
    """Index ``i`` reflected into ``[0, n)`` without repeating the edge (d c b | a b c d | c b a)."""
    if 0 <= i < n:
        return i
    if n == 1:
        return 0
    if -n < i < 0:  # one reflection covers nearly every case, without a division
        return -i
    if n <= i < 2 * n - 1:
        return 2 * (n - 1) - i
    period = 2 * (n - 1)
    i = i % period  # Python semantics: non-negative for a positive period
    if i >= n:
        i = period - i
    return i


# Fixed-point format: positions carry 32 fractional bits (int64), bilinear weights 20 bits.
# Weight truncation costs at most 2 * 2**-20 of the local value range (< 0.001 grey levels for
# uint8, < 0.13 for uint16), so the result stays within one level of exact bilinear
# interpolation; the largest intermediate, a uint16 value shifted by 40 bits, fits in an int64.
_FRAC = 32
_ONE = float(2**_FRAC)
_WBITS = 20
_WSHIFT = _FRAC - _WBITS
_WMASK = (1 << _WBITS) - 1
_HALF = 1 << (2 * _WBITS - 1)


@njit(**NJIT)
def _lerp_fixed(p00, p01, p10, p11, fr, fc):  # pragma: no cover - compiled
    """Bilinear value of four int64 pixels with 20-bit weights, rounded half up."""
    top = (p00 << _WBITS) + fc * (p01 - p00)
    bot = (p10 << _WBITS) + fc * (p11 - p10)
    return ((top << _WBITS) + fr * (bot - top) + _HALF) >> (2 * _WBITS)


# 8-bit pixels: the same value as _lerp_fixed, computed in float64 instead of int64. Every
# intermediate is an integer below 2**51 (pixels below 2**8, weights at most 2**20), so every
# product and sum is exact: the result is _lerp_fixed's bit for bit whatever the order or fusion
# of the operations, which is why contraction into FMA is allowed here, and no other fast-math
# flag is. It moves the arithmetic from the integer units, the bottleneck of the warp, to the
# floating-point ones. (16-bit pixels would need 57 bits, so they keep _lerp_fixed.)
_BYTE_VALUES = np.arange(256, dtype=np.float64)  # uint8 -> float64 by a load, not a conversion
_W_ONE = float(1 << _WBITS)
_W_HALF = float(1 << (_WBITS - 1))
_W_SCALE = 1.0 / float(1 << (2 * _WBITS))


@njit(**NJIT_EXACT_FMA)
def _lerp_u8(p00, p01, p10, p11, fr, fc):  # pragma: no cover - compiled
    """:func:`_lerp_fixed` of four uint8 pixels, exactly, in float64 (see above)."""
    f = _BYTE_VALUES
    wr = np.float64(fr)
    wc = np.float64(fc)
    top = f[p01] * wc + (f[p00] * (_W_ONE - wc) + _W_HALF)  # (p00 << 20) + fc (p01 - p00) + 2**19
    bot = f[p11] * wc + (f[p10] * (_W_ONE - wc) + _W_HALF)
    return np.int64((bot * wr + top * (_W_ONE - wr)) * _W_SCALE)  # >= 0: truncation is floor


def _lerp_pixels(p00, p01, p10, p11, fr, fc):
    """Bilinear value of four pixels of an image's own dtype: :func:`_lerp_u8` for uint8,
    :func:`_lerp_fixed` otherwise (the same numbers; chosen by type when compiled)."""
    return _lerp_fixed(np.int64(p00), np.int64(p01), np.int64(p10), np.int64(p11), fr, fc)


@overload(_lerp_pixels, jit_options=NJIT)
def _lerp_pixels_typed(p00, p01, p10, p11, fr, fc):  # pragma: no cover - compiled
    if p00 == types.uint8:
        return lambda p00, p01, p10, p11, fr, fc: _lerp_u8(p00, p01, p10, p11, fr, fc)
    return lambda p00, p01, p10, p11, fr, fc: _lerp_fixed(
        np.int64(p00), np.int64(p01), np.int64(p10), np.int64(p11), fr, fc)


@njit(**NJIT)
def _reflect_fixed(P, n):  # pragma: no cover - compiled
    """Fixed-point position ``P`` mirrored into ``[0, n - 1]`` (n >= 2), returned as the top-left
    neighbour index in ``[0, n - 2]`` and its 20-bit weight (a position on the last pixel becomes
    index ``n - 2`` with full weight on ``n - 1``)."""
    lim = np.int64(n - 1) << _FRAC
    if P < 0:
        P = -P
    if P > lim:
        P = 2 * lim - P
        if P < 0:  # more than one reflection away: rare, so the division is affordable
            period = 2 * lim
            P = P % period
            if P > lim:
                P = period - P
    i = P >> _FRAC
    if i >= n - 1:
        return n - 2, np.int64(1) << _WBITS
    return i, (P >> _WSHIFT) & _WMASK


@njit(inline="always", **NJIT)
def _fold(P, lim):  # pragma: no cover - compiled
    """``(Q, sign)``: fixed-point position ``P`` mirrored into ``[0, lim]`` (``lim`` the last
    pixel, > 0) as :func:`_reflect_fixed` mirrors it, and ``dQ/dP`` (+1 or -1), which holds on
    both sides of ``P`` until ``Q`` reaches 0 or ``lim``. ``Q == lim`` means the last pixel."""
    if 0 <= P < lim:
        return P, 1
    if -lim < P < 0:
        return -P, -1
    if lim <= P < 2 * lim:
        return 2 * lim - P, -1
    period = 2 * lim  # more than one reflection away: rare, so the division is affordable
    m = P % period  # Python semantics: non-negative
    if m <= lim:
        return m, 1
    return period - m, -1


@njit(inline="always", **NJIT)
def _run_length(Q, step, lim, most):  # pragma: no cover - compiled
    """How many of ``Q, Q + step, Q + 2 step, ...`` lie in ``[0, lim)``, at most ``most``;
    ``Q`` itself does."""
    if step > 0:
        return min((lim - 1 - Q) // step + 1, most)
    if step < 0:
        return min(Q // -step + 1, most)
    return most


@njit(**NJIT)
def _grey_run(s, t, lut, R, C, d_r, d_c, uw, o, n):  # pragma: no cover - compiled
    """``n`` grey output pixels from flat index ``o`` on, at positions ``(R, C) + j (d_r, d_c)``
    that all lie inside ``[0, h - 1) x [0, w - 1)``: no border test, no reflection."""
    one = np.uint64(1)
    for j in range(n):
        fr = (R >> _WSHIFT) & _WMASK
        fc = (C >> _WSHIFT) & _WMASK
        k = np.uint64(R >> _FRAC) * uw + np.uint64(C >> _FRAC)
        v = _lerp_pixels(s[k], s[k + one], s[k + uw], s[k + uw + one], fr, fc)
        t[o + np.uint64(j)] = lut[np.uint64(v)]
        R += d_r
        C += d_c


@njit(**NJIT)
def _grey_pixels(s, t, row, R, C, d_r, d_c, h, w, r_lim, c_lim, tiny, lut, c0, c1):  # pragma: no cover
    """Grey output pixels ``c0 <= c < c1`` of the row at flat index ``row``, each tested and
    reflected on its own; ``(R, C)`` is the position of pixel ``c0``."""
    uw = np.uint64(w)
    one = np.uint64(1)
    for c in range(c0, c1):
        fr = (R >> _WSHIFT) & _WMASK
        fc = (C >> _WSHIFT) & _WMASK
        if np.uint64(R) < r_lim and np.uint64(C) < c_lim:
            k = np.uint64(R >> _FRAC) * uw + np.uint64(C >> _FRAC)
            v = _lerp_pixels(s[k], s[k + one], s[k + uw], s[k + uw + one], fr, fc)
        elif not tiny:
            # mirror the position itself: bilinear on the reflected image at p equals
            # bilinear on the image at the reflected p (the extension is symmetric)
            ir, fr = _reflect_fixed(R, h)
            ic, fc = _reflect_fixed(C, w)
            k = np.uint64(ir) * uw + np.uint64(ic)
            v = _lerp_pixels(s[k], s[k + one], s[k + uw], s[k + uw + one], fr, fc)
        else:
            ir = R >> _FRAC
            ic = C >> _FRAC
            r0 = reflect_index(ir, h) * w
            r1 = reflect_index(ir + 1, h) * w
            k0 = reflect_index(ic, w)
            k1 = reflect_index(ic + 1, w)
            v = _lerp_pixels(s[r0 + k0], s[r0 + k1], s[r1 + k0], s[r1 + k1], fr, fc)
        t[row + np.uint64(c)] = lut[np.uint64(v)]
        R += d_r
        C += d_c


@njit(**NJIT)
def _grey_row(s, t, row, R, C, d_r, d_c, h, w, r_lim, c_lim, lut):  # pragma: no cover - compiled
    """One grey output row (``h, w >= 2``) cut into runs: along a run both mirrored positions
    move linearly inside the image (:func:`_fold`), so :func:`_grey_run` needs neither a border
    test nor a reflection per pixel; a position exactly on the last row or column (the only one
    :func:`_fold` cannot put inside) goes through :func:`_grey_pixels`. The same positions and
    weights as testing every pixel, hence the same bytes."""
    uw = np.uint64(w)
    rl = np.int64(r_lim)
    cl = np.int64(c_lim)
    c = 0
    while c < w:
        Q, sr = _fold(R, rl)
        P, sc = _fold(C, cl)
        if Q < rl and P < cl:
            n = _run_length(P, sc * d_c, cl, _run_length(Q, sr * d_r, rl, w - c))
            _grey_run(s, t, lut, Q, P, sr * d_r, sc * d_c, uw, row + np.uint64(c), np.uint64(n))
        else:
            n = 1
            _grey_pixels(s, t, row, R, C, d_r, d_c, h, w, r_lim, c_lim, False, lut, c, c + 1)
        c += n
        R += n * d_r
        C += n * d_c


@njit(**NJIT)
def warp_bilinear(src, dst, m00, m01, m02, m10, m11, m12, lut):  # pragma: no cover - compiled
    """Bilinear affine warp of ``src`` (H, W, C) into ``dst`` (H, W, C), both C-contiguous,
    rounded half up and passed through ``lut``.

    Positions run in fixed point (32 fractional bits, int64) along each output row, so there is
    no float-to-int conversion per pixel; where the 2 x 2 neighbourhood lies inside the image the
    reads use unsigned indices (no negative-index wraparound). Outside, the position itself is
    mirrored back into the image (with mirror borders, bilinear interpolation is symmetric about
    the edge pixels, so this equals reflecting the four neighbours); images of height or width 1
    reflect the neighbours' indices instead. Positions must stay within about +-2**30 pixels
    (the wrapper checks).

    Rows are cut into runs along which both mirrored positions move linearly inside the image
    (:func:`_grey_row`, :func:`_channel_row`), so a reflected pixel costs what an inner one
    costs and no pixel is tested against the border; uint8 pixels are interpolated in exact
    float64 (:func:`_lerp_u8`), which takes the arithmetic off the integer units. Together, for
    augment_batch with the LSM-1 settings on 256 x 256 patches, one thread: 1.2-1.3x faster for
    grey uint8, 1.06x grey uint16, 1.7x RGB uint8, 1.17x RGB uint16. Neither helps alone: the
    float lerp inside the per-pixel border test is 4 % slower, the runs with the integer lerp
    1 % faster (grey uint8).

    Measured and rejected before (256 x 256 uint8, one thread, ~2.5 ns per pixel with the
    integer lerp, about 26 integer operations, the ALU's throughput): splitting each row into a
    branch-free interior loop and reflected ends (no gain inside, the branch is predicted; slower
    overall), float32 arithmetic (1.75x slower; not exact either), and computing a row's indices
    and weights in a separate, vectorised pass (1.6x slower), and, bit-identical but slower
    again: the same split with the interior range of each row solved in closed form, and
    neighbour pairs packed into one int64 per pixel beforehand (two reads instead of four and
    one multiply for both rows; the packing pass costs more than it saves). LLVM emits no gather
    instructions for this CPU (znver4), so the 2 x 2 reads stay scalar."""
    h, w, nch = src.shape
    s = src.reshape(-1)
    t = dst.reshape(-1)
    # fast when 0 <= row < h - 1 and 0 <= col < w - 1 (as unsigned: negatives wrap to huge)
    r_lim = np.uint64(h - 1) << np.uint64(_FRAC)
    c_lim = np.uint64(w - 1) << np.uint64(_FRAC)
    d_r = np.int64(round(m01 * _ONE))
    d_c = np.int64(round(m11 * _ONE))
    tiny = h < 2 or w < 2
    for r in range(h):
        R = np.int64(round((m00 * r + m02) * _ONE))
        C = np.int64(round((m10 * r + m12) * _ONE))
        row = np.uint64(r * w)
        if nch == 1:
            if tiny:
                _grey_pixels(s, t, row, R, C, d_r, d_c, h, w, r_lim, c_lim, True, lut, 0, w)
            else:
                _grey_row(s, t, row, R, C, d_r, d_c, h, w, r_lim, c_lim, lut)
            continue
        if tiny:
            _warp_row_channels(s, t, r, R, C, d_r, d_c, h, w, nch, r_lim, c_lim, True, lut, 0, w)
        else:
            _channel_row(s, t, r, R, C, d_r, d_c, h, w, nch, r_lim, c_lim, lut)


@njit(inline="always", **NJIT)
def _warp_row_channels(s, t, r, R, C, d_r, d_c, h, w, nch, r_lim, c_lim, tiny, lut, c0, c1):  # pragma: no cover
    """Output pixels ``c0 <= c < c1`` of row ``r`` for ``nch`` interleaved channels, each tested
    and reflected on its own; ``(R, C)`` is the position of pixel ``c0``."""
    uw = np.uint64(w)
    unch = np.uint64(nch)
    below = uw * unch
    row = np.uint64(r * w)
    for c in range(c0, c1):
        fr = (R >> _WSHIFT) & _WMASK
        fc = (C >> _WSHIFT) & _WMASK
        if np.uint64(R) < r_lim and np.uint64(C) < c_lim:
            base = (np.uint64(R >> _FRAC) * uw + np.uint64(C >> _FRAC)) * unch
            o = (row + np.uint64(c)) * unch
            for ch in range(nch):
                k = base + np.uint64(ch)
                v = _lerp_pixels(s[k], s[k + unch], s[k + below], s[k + below + unch], fr, fc)
                t[o + np.uint64(ch)] = lut[np.uint64(v)]
        elif not tiny:  # mirrored position, as in the grey loop of warp_bilinear
            ir, fr = _reflect_fixed(R, h)
            ic, fc = _reflect_fixed(C, w)
            base = (np.uint64(ir) * uw + np.uint64(ic)) * unch
            o = (row + np.uint64(c)) * unch
            for ch in range(nch):
                k = base + np.uint64(ch)
                v = _lerp_pixels(s[k], s[k + unch], s[k + below], s[k + below + unch], fr, fc)
                t[o + np.uint64(ch)] = lut[np.uint64(v)]
        else:
            ir = R >> _FRAC
            ic = C >> _FRAC
            r0 = reflect_index(ir, h) * w
            r1 = reflect_index(ir + 1, h) * w
            k0 = reflect_index(ic, w)
            k1 = reflect_index(ic + 1, w)
            o = (r * w + c) * nch
            for ch in range(nch):
                v = _lerp_fixed(np.int64(s[(r0 + k0) * nch + ch]), np.int64(s[(r0 + k1) * nch + ch]),
                                np.int64(s[(r1 + k0) * nch + ch]), np.int64(s[(r1 + k1) * nch + ch]),
                                fr, fc)
                t[o + ch] = lut[v]
        R += d_r
        C += d_c


@njit(inline="always", **NJIT)
def _channel_run(s, t, lut, R, C, d_r, d_c, w, nch, o, n):  # pragma: no cover - compiled
    """:func:`_grey_run` for ``nch`` interleaved channels (``o`` a flat pixel index)."""
    uw = np.uint64(w)
    unch = np.uint64(nch)
    below = uw * unch
    for j in range(n):
        fr = (R >> _WSHIFT) & _WMASK
        fc = (C >> _WSHIFT) & _WMASK
        base = (np.uint64(R >> _FRAC) * uw + np.uint64(C >> _FRAC)) * unch
        out = (o + np.uint64(j)) * unch
        for ch in range(nch):
            k = base + np.uint64(ch)
            v = _lerp_pixels(s[k], s[k + unch], s[k + below], s[k + below + unch], fr, fc)
            t[out + np.uint64(ch)] = lut[np.uint64(v)]
        R += d_r
        C += d_c


@njit(**NJIT)
def _channel_row(s, t, r, R, C, d_r, d_c, h, w, nch, r_lim, c_lim, lut):  # pragma: no cover - compiled
    """:func:`_grey_row` for ``nch`` interleaved channels."""
    rl = np.int64(r_lim)
    cl = np.int64(c_lim)
    row = np.uint64(r * w)
    c = 0
    while c < w:
        Q, sr = _fold(R, rl)
        P, sc = _fold(C, cl)
        if Q < rl and P < cl:
            n = _run_length(P, sc * d_c, cl, _run_length(Q, sr * d_r, rl, w - c))
            o = row + np.uint64(c)
            if nch == 3:  # a literal channel count lets LLVM unroll the channel loop (RGB)
                _channel_run(s, t, lut, Q, P, sr * d_r, sc * d_c, w, 3, o, np.uint64(n))
            else:
                _channel_run(s, t, lut, Q, P, sr * d_r, sc * d_c, w, nch, o, np.uint64(n))
        else:
            n = 1
            _warp_row_channels(s, t, r, R, C, d_r, d_c, h, w, nch, r_lim, c_lim, False, lut, c, c + 1)
        c += n
        R += n * d_r
        C += n * d_c


@njit(**NJIT)
def warp_nearest(src, dst, m00, m01, m02, m10, m11, m12):  # pragma: no cover - compiled
    """Nearest-neighbour affine warp of ``src`` (H, W) into ``dst`` (H, W), both C-contiguous:
    the input pixel ``floor(position + 0.5)``, reflected; values are copied, so a binary mask
    stays binary. Fixed point as in :func:`warp_bilinear`."""
    h, w = src.shape
    s = src.reshape(-1)
    t = dst.reshape(-1)
    uw = np.uint64(w)
    r_lim = np.uint64(h) << np.uint64(_FRAC)
    c_lim = np.uint64(w) << np.uint64(_FRAC)
    d_r = np.int64(round(m01 * _ONE))
    d_c = np.int64(round(m11 * _ONE))
    for r in range(h):
        # shifted by half a pixel, so that the nearest index is the floor
        R = np.int64(round((m00 * r + m02 + 0.5) * _ONE))
        C = np.int64(round((m10 * r + m12 + 0.5) * _ONE))
        row = np.uint64(r * w)
        for c in range(w):
            if np.uint64(R) < r_lim and np.uint64(C) < c_lim:
                k = np.uint64(R >> _FRAC) * uw + np.uint64(C >> _FRAC)
            else:
                k = np.uint64(reflect_index(R >> _FRAC, h) * w + reflect_index(C >> _FRAC, w))
            t[row + np.uint64(c)] = s[k]
            R += d_r
            C += d_c


@njit(**NJIT)
def copy_lut(src, dst, lut):  # pragma: no cover - compiled
    """``dst = lut[src]`` elementwise (C-contiguous arrays of the same size)."""
    s = src.reshape(-1)
    t = dst.reshape(-1)
    for j in range(s.shape[0]):
        t[j] = lut[s[j]]


@njit(**NJIT)
def copy_flat(src, dst):  # pragma: no cover - compiled
    """``dst = src`` (C-contiguous arrays of the same size)."""
    s = src.reshape(-1)
    t = dst.reshape(-1)
    for j in range(s.shape[0]):
        t[j] = s[j]


@njit(**NJIT)
def illumination_lut(img, brightness, contrast, lut):  # pragma: no cover - compiled
    """Fill ``lut`` for ``v -> clip(round(contrast * (brightness * v - mu) + mu))``, ``mu`` the
    mean of ``brightness * img`` over all pixels and channels, rounded half up and clipped to
    ``[0, len(lut) - 1]``. Bilinear values (convex combinations) and copies never leave
    ``[min(img), max(img)]``, so only that range is filled for 16-bit tables; an 8-bit table is
    filled whole (256 entries cost less than finding the range: 3.2 against 5.8 us for a
    256 x 256 patch). The sum is an integer, so ``mu`` is exact."""
    flat = img.reshape(-1)
    npix = flat.shape[0]
    maxval = lut.shape[0] - 1
    total = 0
    if maxval <= 255:  # 8-bit: filling all 256 entries costs less than a min/max pass
        lo = 0
        hi = maxval
        for j in range(npix):
            total += np.int64(flat[j])
    else:
        lo = maxval
        hi = 0
        for j in range(npix):
            v = np.int64(flat[j])
            total += v
            lo = min(lo, v)
            hi = max(hi, v)
    mu = brightness * (total / npix)
    gain = contrast * brightness
    offset = mu - contrast * mu
    for v in range(lo, hi + 1):
        y = math.floor(gain * v + offset + 0.5)
        lut[v] = min(max(y, 0.0), maxval)


@njit(**NJIT)
def draw_params(seed, p):  # pragma: no cover - compiled
    """Seed the thread's generator with ``seed`` and draw one item's parameters in a fixed order.

    ``p`` holds ``(p_affine, rot_lo, rot_hi, scale_lo, scale_hi, shear_lo, shear_hi, p_vflip,
    p_hflip, b_lo, b_hi, c_lo, c_hi)`` (angles in degrees). Returns ``(apply, angle, scale,
    shear, vflip, hflip, brightness, contrast)``; every draw happens whatever ``apply`` is, so
    the stream of draws is fixed."""
    np.random.seed(seed)
    apply = np.random.random() < p[0]
    angle = p[1] + (p[2] - p[1]) * np.random.random()
    scale = p[3] + (p[4] - p[3]) * np.random.random()
    shear = p[5] + (p[6] - p[5]) * np.random.random()
    vflip = np.random.random() < p[7]
    hflip = np.random.random() < p[8]
    brightness = p[9] + (p[10] - p[9]) * np.random.random()
    contrast = p[11] + (p[12] - p[11]) * np.random.random()
    return apply, angle, scale, shear, vflip, hflip, brightness, contrast


@njit(**NJIT)
def affine_matrix(h, w, angle, scale, shear, vflip, hflip):  # pragma: no cover - compiled
    """The 2 x 3 output-to-input matrix (rows, columns) of the forward transform
    ``F R(angle) Sh(shear) scale`` about the patch centre, in ``(x, y) = (column, row)``
    coordinates: ``F`` flips (x -> -x for ``hflip``, y -> -y for ``vflip``), ``R`` rotates by
    ``angle`` degrees, ``Sh = [[1, tan(shear)], [0, 1]]`` shears along x."""
    t = math.radians(angle)
    cs = math.cos(t)
    sn = math.sin(t)
    k = math.tan(math.radians(shear))
    fx = -1.0 if hflip else 1.0
    fy = -1.0 if vflip else 1.0
    # A = F @ R @ Sh * scale, acting on (x, y)
    a00 = fx * cs * scale
    a01 = fx * (cs * k - sn) * scale
    a10 = fy * sn * scale
    a11 = fy * (sn * k + cs) * scale
    det = a00 * a11 - a01 * a10
    i00 = a11 / det
    i01 = -a01 / det
    i10 = -a10 / det
    i11 = a00 / det
    cy = (h - 1) / 2.0
    cx = (w - 1) / 2.0
    m = np.empty((2, 3), dtype=np.float64)
    # source row  y' = i10 (x - cx) + i11 (y - cy) + cy ; source col x' = i00 (x - cx) + i01 (y - cy) + cx
    m[0, 0] = i11
    m[0, 1] = i10
    m[0, 2] = cy - i11 * cy - i10 * cx
    m[1, 0] = i01
    m[1, 1] = i00
    m[1, 2] = cx - i01 * cy - i00 * cx
    return m


@njit(**NJIT)
def augment_item(images, masks, has_masks, seeds, p, maxval, out, out_masks, i):  # pragma: no cover
    """Augment item ``i`` of ``images`` (N, H, W, C) into ``out[i]``, and ``masks[i]`` into
    ``out_masks[i]`` with the same geometry when ``has_masks``; it depends only on its input and
    ``seeds[i]``, and writes only ``out[i]`` and ``out_masks[i]``.

    The illumination change is a look-up table built from the input patch's mean and applied as
    each output pixel is written, so it costs no extra pass over the output."""
    h, w = images.shape[1], images.shape[2]
    apply, angle, scale, shear, vflip, hflip, brightness, contrast = draw_params(seeds[i], p)
    lut = np.empty(maxval + 1, dtype=images.dtype)
    illumination_lut(images[i], brightness, contrast, lut)
    if apply:
        m = affine_matrix(h, w, angle, scale, shear, vflip, hflip)
        warp_bilinear(images[i], out[i], m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2], lut)
        if has_masks:
            warp_nearest(masks[i], out_masks[i], m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2])
    else:
        copy_lut(images[i], out[i], lut)
        if has_masks:
            copy_flat(masks[i], out_masks[i])


@njit(**NJIT_PARALLEL)
def augment_batch(images, masks, has_masks, seeds, p, maxval, out, out_masks):  # pragma: no cover
    """:func:`augment_item` for every item, in parallel over items."""
    for i in prange(images.shape[0]):
        augment_item(images, masks, has_masks, seeds, p, maxval, out, out_masks, i)


@njit(**NJIT)
def augment_serial(images, masks, has_masks, seeds, p, maxval, out, out_masks):  # pragma: no cover
    """:func:`augment_batch` without threads (the same bytes): for one item, where a parallel
    launch costs more than the item, and in a data-loading worker (``_shared.config.run_serial``)."""
    for i in range(images.shape[0]):
        augment_item(images, masks, has_masks, seeds, p, maxval, out, out_masks, i)


@njit(**NJIT_PARALLEL)
def warp_batch_bilinear(images, matrix, lut, out):  # pragma: no cover - compiled
    """Bilinear warp of every item of ``images`` (N, H, W, C) with one 2 x 3 ``matrix``, through
    ``lut`` (the identity for a plain warp). Parallel over items."""
    for i in prange(images.shape[0]):
        warp_bilinear(images[i], out[i], matrix[0, 0], matrix[0, 1], matrix[0, 2],
                      matrix[1, 0], matrix[1, 1], matrix[1, 2], lut)


@njit(**NJIT_PARALLEL)
def warp_batch_nearest(images, matrix, out):  # pragma: no cover - compiled
    """Nearest-neighbour warp of every plane of ``images`` (N, H, W) with one 2 x 3 ``matrix``.
    Parallel over planes."""
    for i in prange(images.shape[0]):
        warp_nearest(images[i], out[i], matrix[0, 0], matrix[0, 1], matrix[0, 2],
                     matrix[1, 0], matrix[1, 1], matrix[1, 2])


@njit(**NJIT)
def warp_serial_bilinear(images, matrix, lut, out):  # pragma: no cover - compiled
    """:func:`warp_batch_bilinear` without threads (``_shared.config.run_serial``)."""
    for i in range(images.shape[0]):
        warp_bilinear(images[i], out[i], matrix[0, 0], matrix[0, 1], matrix[0, 2],
                      matrix[1, 0], matrix[1, 1], matrix[1, 2], lut)


@njit(**NJIT)
def warp_serial_nearest(images, matrix, out):  # pragma: no cover - compiled
    """:func:`warp_batch_nearest` without threads (``_shared.config.run_serial``)."""
    for i in range(images.shape[0]):
        warp_nearest(images[i], out[i], matrix[0, 0], matrix[0, 1], matrix[0, 2],
                     matrix[1, 0], matrix[1, 1], matrix[1, 2])
