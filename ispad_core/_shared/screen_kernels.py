"""Numba kernel of :func:`ispad_core.samples.screen_print` (private).

Kernels assume valid input and never raise. All randomness except the sensor noise is drawn on the
host; the noise is drawn per row after ``np.random.seed(row_seeds[row])``, so the image is the same
on any number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ispad_core._shared.config import NJIT, NJIT_PARALLEL
from ispad_core._shared.kernels import fade

# Layout of the float parameter vector handed to the kernel (filled by samples.py).
P_KIND = 0  # 0 dots, 1 lines, 2 mesh, 3 mixed
P_DOT_PERIOD = 1
P_DOT_ANGLE = 2
P_DOT_RADIUS = 3  # dot radius as a fraction of the period
P_DOT_JITTER = 4  # relative per-cell jitter of the dot radius
P_LINE_PERIOD = 5
P_LINE_ANGLE = 6
P_LINE_DUTY = 7  # inked fraction of a line period
P_MESH_PERIOD_1 = 8
P_MESH_PERIOD_2 = 9
P_MESH_ANGLE_1 = 10
P_MESH_ANGLE_2 = 11
P_MESH_DUTY = 12
P_WARP_AMP = 13  # px of smooth displacement (jitter of period and angle)
P_DENSITY_AMP = 14  # relative low-frequency variation of ink density
P_SHADE_AMP = 15  # relative low-frequency shading
P_TILT_ROW = 16  # linear shading per 1000 px
P_TILT_COL = 17
P_NOISE = 18  # sensor noise, grey levels
P_EDGE = 19  # ink edge softness, px
P_REGION_SOFT = 20  # softness of the region switch of the mixed design
N_PARAMS = 21

# Low-frequency fields, one lattice each (same order as FIELD_CELLS in samples.py).
F_WARP_ROW = 0
F_WARP_COL = 1
F_DENSITY = 2
F_SHADE = 3
F_REGION = 4
N_FIELDS = 5


@njit(**NJIT)
def _coverage(dist, half_width, edge):
    """Anti-aliased ink coverage of a pixel at ``dist`` from a feature of ``half_width``."""
    c = (half_width - dist) / edge + 0.5
    if c < 0.0:
        return 0.0
    if c > 1.0:
        return 1.0
    return c


@njit(**NJIT)
def _cell_hash(iu, iv, table):
    # Not the keyed lattice hash of _shared_kernels (lattice_value): this indexes a jitter table
    # drawn from the sample's own generator, and switching would change every built-in sample's
    # bytes (and the figures and demo made from them).
    h = (iu * 73856093) ^ (iv * 19349663)
    return table[h & (table.shape[0] - 1)]


@njit(**NJIT)
def _lines(u, period, duty, edge):
    f = u / period
    f = f - math.floor(f) - 0.5
    return _coverage(abs(f) * period, 0.5 * duty * period, edge)


@njit(**NJIT_PARALLEL)
def screen_print_kernel(out, params, inks, lattices, cells, cell_table, noise_table, row_seeds):
    """Render the screen-print design into ``out`` (H, W, C) uint8 (valid input assumed).

    ``inks`` (4, C): row 0 the foil, rows 1..3 the transmittance of the dot, line and mesh inks.
    ``lattices`` (N_FIELDS, LH, LW) standard-normal values, one smooth field each, with cell sizes
    ``cells`` (N_FIELDS,) in px. ``cell_table`` (2**k,) per-cell jitter in [-1, 1].
    ``noise_table`` (2**k,) standard-normal quantiles: the sensor noise picks one uniformly per
    pixel and channel (a 4096-level Gaussian, far finer than the uint8 output, at a fraction of
    the cost of ``np.random.normal``).
    """
    h, w, nch = out.shape
    kind = int(params[P_KIND])
    # Column half of every field's interpolation, shared by all rows.
    col_idx = np.empty((N_FIELDS, w), np.int64)
    col_wt = np.empty((N_FIELDS, w))
    for f in range(N_FIELDS):
        for x in range(w):
            g = x / cells[f]
            j = int(math.floor(g))
            col_idx[f, x] = j
            col_wt[f, x] = fade(g - j)
    ca1 = math.cos(params[P_DOT_ANGLE])
    sa1 = math.sin(params[P_DOT_ANGLE])
    ca2 = math.cos(params[P_LINE_ANGLE])
    sa2 = math.sin(params[P_LINE_ANGLE])
    cm1 = math.cos(params[P_MESH_ANGLE_1])
    sm1 = math.sin(params[P_MESH_ANGLE_1])
    cm2 = math.cos(params[P_MESH_ANGLE_2])
    sm2 = math.sin(params[P_MESH_ANGLE_2])
    edge = params[P_EDGE]
    dot_p = params[P_DOT_PERIOD]
    line_p = params[P_LINE_PERIOD]
    for y in prange(h):
        np.random.seed(row_seeds[y])
        vals = np.empty(N_FIELDS)
        row_i = np.empty(N_FIELDS, np.int64)
        row_w = np.empty(N_FIELDS)
        for f in range(N_FIELDS):
            g = y / cells[f]
            i = int(math.floor(g))
            row_i[f] = i
            row_w[f] = fade(g - i)
        for x in range(w):
            for f in range(N_FIELDS):
                i = row_i[f]
                j = col_idx[f, x]
                sx = col_wt[f, x]
                top = lattices[f, i, j] + sx * (lattices[f, i, j + 1] - lattices[f, i, j])
                bot = lattices[f, i + 1, j] + sx * (lattices[f, i + 1, j + 1] - lattices[f, i + 1, j])
                vals[f] = top + row_w[f] * (bot - top)
            yy = y + params[P_WARP_AMP] * vals[F_WARP_ROW]
            xx = x + params[P_WARP_AMP] * vals[F_WARP_COL]
            density = 1.0 + params[P_DENSITY_AMP] * vals[F_DENSITY]
            c_dot = 0.0
            c_line = 0.0
            c_mesh = 0.0
            region = 1.0
            if kind == 3:
                region = _coverage(-vals[F_REGION], 0.0, params[P_REGION_SOFT])
            if kind == 0 or (kind == 3 and region > 0.0):
                u = xx * ca1 + yy * sa1
                v = -xx * sa1 + yy * ca1
                fu = u / dot_p
                fv = v / dot_p
                iu = int(math.floor(fu))
                iv = int(math.floor(fv))
                du = (fu - iu - 0.5) * dot_p
                dv = (fv - iv - 0.5) * dot_p
                radius = params[P_DOT_RADIUS] * dot_p * density
                radius *= 1.0 + params[P_DOT_JITTER] * _cell_hash(iu, iv, cell_table)
                c_dot = _coverage(math.sqrt(du * du + dv * dv), radius, edge) * region
            if kind == 1 or (kind == 3 and region < 1.0):
                u = xx * ca2 + yy * sa2
                c_line = _lines(u, line_p, params[P_LINE_DUTY] * density, edge)
                if kind == 3:
                    c_line *= 1.0 - region
            if kind == 2 or kind == 3:
                u1 = xx * cm1 + yy * sm1
                u2 = xx * cm2 + yy * sm2
                a = _lines(u1, params[P_MESH_PERIOD_1], params[P_MESH_DUTY] * density, edge)
                b = _lines(u2, params[P_MESH_PERIOD_2], params[P_MESH_DUTY] * density, edge)
                c_mesh = 1.0 - (1.0 - a) * (1.0 - b)
            shade = 1.0 + params[P_SHADE_AMP] * vals[F_SHADE]
            shade += (params[P_TILT_ROW] * (y - 0.5 * h) + params[P_TILT_COL] * (x - 0.5 * w)) * 1e-3
            for c in range(nch):
                t = (1.0 - c_dot * (1.0 - inks[1, c])) * (1.0 - c_line * (1.0 - inks[2, c]))
                t *= 1.0 - c_mesh * (1.0 - inks[3, c])
                value = inks[0, c] * t * shade + params[P_NOISE] * noise_table[np.random.randint(0, noise_table.shape[0])]
                value = math.floor(value + 0.5)
                if value < 0.0:
                    value = 0.0
                elif value > 255.0:
                    value = 255.0
                out[y, x, c] = np.uint8(value)
