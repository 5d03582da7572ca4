"""The premise of the reference: Numba's seeded stream equals numpy.random.RandomState's.

The kernels draw only with the calls checked here; if a Numba release changed one of them, this
test names it before the reference comparison fails.
"""

import numpy as np
import pytest
from numba import njit

N = 64


@njit(cache=True)
def _numba_draws(seed, out):
    np.random.seed(seed)
    for i in range(0, out.shape[0], 8):
        out[i] = np.random.random()
        out[i + 1] = np.random.uniform(-2.0, 5.0)
        out[i + 2] = np.random.normal()
        out[i + 3] = np.random.randint(0, 7)
        out[i + 4] = np.random.randint(3, 4)  # a one-value range
        out[i + 5] = np.random.randint(0, 2**31)
        out[i + 6] = np.random.uniform(1.5, 1.5)  # an empty range still draws
        out[i + 7] = np.random.normal()
    lattice = np.random.random((3, 4))
    return lattice


def _numpy_draws(seed):
    rs = np.random.RandomState(seed)
    out = np.empty(N)
    for i in range(0, N, 8):
        out[i] = rs.random_sample()
        out[i + 1] = rs.uniform(-2.0, 5.0)
        out[i + 2] = rs.normal()
        out[i + 3] = rs.randint(0, 7)
        out[i + 4] = rs.randint(3, 4)
        out[i + 5] = rs.randint(0, 2**31)
        out[i + 6] = rs.uniform(1.5, 1.5)
        out[i + 7] = rs.standard_normal()
    return out, rs.random_sample((3, 4))


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**31, 2**32 - 1])
def test_numba_stream_equals_randomstate(seed):
    got = np.empty(N)
    lattice = _numba_draws(np.uint32(seed), got)
    want, want_lattice = _numpy_draws(seed)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(lattice, want_lattice)
