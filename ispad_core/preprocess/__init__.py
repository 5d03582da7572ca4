"""The paper's preprocessing: a brightness factor and weak 3 x 3 Gaussian smoothing.

"Patches from LSM-1 were brightness-adjusted by a factor of 1.5. Additionally, weak smoothing was
applied across all modalities using a Gaussian kernel with a kernel size of 3 and a sigma of 1"
(ISP-AD, section 4.2). Both work on uint8 (and uint16) images or batches and return the same
dtype, rounded half up and saturated at the dtype's range.

Shapes: a 2-D array is one ``(H, W)`` image; more dimensions are leading batch axes,
``(N, H, W)``. With ``channel_axis=-1`` the last axis holds channels: ``(H, W, C)`` or
``(N, H, W, C)``. Smoothing acts on the two spatial axes only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core.preprocess import _kernels as K
from ispad_core._shared.kernels import gaussian_taps
from ispad_core.modality import MODALITIES
from ispad_core._shared.validation import check_array, check_choice, check_float, check_int

__all__ = ["adjust_brightness", "brightness_table", "gaussian_smooth", "gaussian_kernel1d", "LSM1_BRIGHTNESS"]

#: The brightness factor the paper applies to LSM-1 patches (from the modality table).
LSM1_BRIGHTNESS = MODALITIES["lsm1"].brightness

_SUPPORTED = (np.uint8, np.uint16)
# scipy.ndimage mode -> numpy.pad mode giving the same padded indices
_PAD_MODES = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge"}


def adjust_brightness(x: Any, factor: float) -> np.ndarray:
    """Multiply every value by ``factor``, rounding half up and saturating at the dtype's maximum.

    Parameters
    ----------
    x : numpy.ndarray of uint8 or uint16, any shape
        Images, batches, with or without channels (the operation is per value).
    factor : float
        Brightness factor, >= 0 (the paper uses 1.5 for LSM-1).

    Returns
    -------
    numpy.ndarray, like ``x``
        A new array.

    Raises
    ------
    TypeError
        If ``x`` is not uint8/uint16 or ``factor`` not a real number.
    ValueError
        If ``factor`` is negative or not finite, or ``x`` is empty.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.preprocess import adjust_brightness
    >>> adjust_brightness(np.array([0, 1, 3, 100, 170, 255], np.uint8), 1.5)
    array([  0,   2,   5, 150, 255, 255], dtype=uint8)
    """
    x = check_array(x, "x", dtypes=_SUPPORTED)
    factor = check_float(factor, "factor", minimum=0.0)
    return brightness_table(factor, maxval=int(np.iinfo(x.dtype).max)).astype(x.dtype)[x]


def brightness_table(factor: float, *, maxval: int = 255) -> np.ndarray:
    """The brightness look-up table: level ``v`` becomes ``min(floor(factor * v + 0.5), maxval)``.

    The one table behind :func:`adjust_brightness` and the torch preprocessing
    (:func:`ispad_core.nn.preprocess_batch`), computed in float64 so both round alike.

    Parameters
    ----------
    factor : float
        Brightness factor, >= 0.
    maxval : int, default 255
        The largest level (255 for uint8, 65535 for uint16).

    Returns
    -------
    numpy.ndarray of float64, shape (maxval + 1,)
        Whole numbers in ``[0, maxval]``.

    Examples
    --------
    >>> from ispad_core.preprocess import brightness_table
    >>> brightness_table(1.5)[[0, 1, 3, 100, 170]].tolist()
    [0.0, 2.0, 5.0, 150.0, 255.0]
    """
    factor = check_float(factor, "factor", minimum=0.0)
    maxval = check_int(maxval, "maxval", minimum=1)
    levels = np.arange(maxval + 1, dtype=np.float64)
    return np.minimum(np.floor(levels * factor + 0.5), maxval)


def gaussian_kernel1d(ksize: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian weights of length ``ksize`` (scipy.ndimage's kernel for radius
    ``ksize // 2``): ``w_k = exp(-k**2 / (2 sigma**2)) / sum``, ``k = -r ... r``.

    The library's one Gaussian-tap function: the synthesizer's width profile and optics blur
    and the torch preprocessing use the same weights.

    Parameters
    ----------
    ksize : int
        Odd kernel length, >= 1.
    sigma : float
        Standard deviation in pixels, > 0.

    Returns
    -------
    numpy.ndarray of float64, shape (ksize,)
        Symmetric weights summing to 1.

    Raises
    ------
    TypeError
        If ``ksize`` is not an int or ``sigma`` not a real number.
    ValueError
        If ``ksize`` is even or < 1, or ``sigma <= 0``.

    Examples
    --------
    >>> from ispad_core.preprocess import gaussian_kernel1d
    >>> gaussian_kernel1d(3, 1.0).round(4)
    array([0.2741, 0.4519, 0.2741])
    """
    ksize = check_int(ksize, "ksize", minimum=1)
    if ksize % 2 == 0:
        raise InputValueError(f"ksize: expected an odd int, got {ksize}")
    sigma = check_float(sigma, "sigma", minimum=0.0, min_inclusive=False)
    return gaussian_taps(sigma, ksize // 2, True)  # the library's one Gaussian-tap function


def gaussian_smooth(
    x: Any,
    *,
    ksize: int = 3,
    sigma: float = 1.0,
    channel_axis: int | None = None,
    mode: str = "reflect",
) -> np.ndarray:
    """Gaussian smoothing of the two spatial axes with a ``ksize x ksize`` kernel.

    Equals ``scipy.ndimage.gaussian_filter`` on the float image with ``sigma`` on the spatial axes
    (0 elsewhere), ``truncate=(ksize // 2) / sigma`` and the same ``mode``, rounded half up, to
    within one grey level (the filter runs in float32). scipy's own uint8 output can differ by
    two levels, since it truncates to uint8 between the two axes.

    Parameters
    ----------
    x : numpy.ndarray of uint8 or uint16
        ``(H, W)`` or ``(N, H, W)`` (any number of leading axes); with ``channel_axis=-1``,
        ``(H, W, C)`` or ``(N, H, W, C)``.
    ksize : int
        Odd kernel size, >= 1 (the paper: 3; 1 leaves ``x`` unchanged).
    sigma : float
        Standard deviation in pixels, > 0 (the paper: 1).
    channel_axis : None or -1
        Whether the last axis holds channels.
    mode : {"reflect", "mirror", "nearest"}
        Border handling, named as in scipy.ndimage: "reflect" (d c b a | a b c d, scipy's
        default), "mirror" (d c b | a b c d: OpenCV's default and torchvision's
        ``GaussianBlur``), "nearest" (a a a | a b c d).

    Returns
    -------
    numpy.ndarray, like ``x``
        A new array.

    Raises
    ------
    TypeError
        If ``x`` is not uint8/uint16 or an argument has the wrong type.
    ValueError
        On too few dimensions, an even or non-positive ``ksize``, ``sigma <= 0``, an unknown
        ``mode`` or ``channel_axis``.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.preprocess import gaussian_smooth
    >>> x = np.zeros((5, 5), np.uint8); x[2, 2] = 255
    >>> gaussian_smooth(x)
    array([[ 0,  0,  0,  0,  0],
           [ 0, 19, 32, 19,  0],
           [ 0, 32, 52, 32,  0],
           [ 0, 19, 32, 19,  0],
           [ 0,  0,  0,  0,  0]], dtype=uint8)
    >>> gaussian_smooth(np.zeros((8, 32, 32, 3), np.uint8), channel_axis=-1).shape
    (8, 32, 32, 3)
    """
    weights = gaussian_kernel1d(ksize, sigma)
    mode = check_choice(mode, "mode", tuple(_PAD_MODES))
    if channel_axis is not None:
        check_choice(channel_axis, "channel_axis", (None, -1))
    has_channels = channel_axis is not None
    min_ndim = 3 if has_channels else 2
    x = check_array(x, "x", dtypes=_SUPPORTED)
    if x.ndim < min_ndim:
        what = "(..., H, W, C)" if has_channels else "(..., H, W)"
        raise InputValueError(f"x: expected at least {min_ndim} dimensions {what}, got shape {x.shape}")
    shape = x.shape
    H, W = shape[-3:-1] if has_channels else shape[-2:]
    C = shape[-1] if has_channels else 1
    planes = np.ascontiguousarray(x).reshape(-1, H, W, C)
    r = ksize // 2
    pad = _PAD_MODES[mode]
    row_index = np.pad(np.arange(H, dtype=np.int64), r, mode=pad)
    col_index = np.pad(np.arange(W, dtype=np.int64), r, mode=pad)
    out = np.empty_like(planes)
    K.separable_smooth(planes, weights.astype(np.float32), row_index, col_index, int(np.iinfo(x.dtype).max), out)
    return out.reshape(shape)
