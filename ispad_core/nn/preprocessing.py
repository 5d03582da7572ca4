"""The paper's preprocessing as a batched torch step on the training device.

Section 4.2 of the paper: LSM-1 patches are brightness-adjusted by a factor of 1.5, and all
modalities are smoothed with a 3 x 3 Gaussian kernel of sigma 1. This module applies both to a
whole uint8 batch on the device (CPU or GPU) and then scales to the network's input range. It
follows the uint8 semantics of :mod:`ispad_core.preprocess` (``adjust_brightness`` saturates and
rounds half up to uint8, ``gaussian_smooth`` filters like ``scipy.ndimage.gaussian_filter`` with
``mode="reflect"`` in float32 and rounds half up to uint8), so training sees what a user who preprocesses patches with
the numpy functions would feed it; ``tests/nn/test_preprocessing.py`` checks the two agree to
within one grey level.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_choice, check_float, check_int
from ispad_core.modality import MODALITIES
from ispad_core.preprocess import brightness_table, gaussian_kernel1d

__all__ = ["PREPROCESS_PRESETS", "Preprocess", "preprocess_batch", "resolve_preprocess"]


@dataclass(frozen=True)
class Preprocess:
    """Settings of the batch preprocessing.

    Attributes
    ----------
    brightness : float
        Multiplicative brightness factor (the paper: 1.5 for LSM-1, 1 otherwise); the result
        saturates at 255 and is rounded to whole grey levels.
    ksize : int
        Odd Gaussian kernel size; 1 disables smoothing (the paper: 3).
    sigma : float
        Gaussian standard deviation in pixels (the paper: 1).
    mean, std : float
        After scaling grey levels to ``[0, 1]`` the input is ``(x - mean) / std``. The defaults
        are the ImageNet statistics averaged over RGB, which suit grey input to weights whose
        ``conv1`` was summed over RGB.
    """

    brightness: float = 1.0
    ksize: int = 3
    sigma: float = 1.0
    mean: float = 0.449
    std: float = 0.226

    def __post_init__(self) -> None:
        check_float(self.brightness, "brightness", minimum=0.0, min_inclusive=False)
        k = check_int(self.ksize, "ksize", minimum=1)
        if k % 2 == 0:
            raise InputValueError(f"ksize: expected an odd kernel size, got {k}")
        check_float(self.sigma, "sigma", minimum=0.0, min_inclusive=False)
        check_float(self.mean, "mean")
        check_float(self.std, "std", minimum=0.0, min_inclusive=False)

    def to_dict(self) -> dict:
        """JSON-serialisable settings."""
        return asdict(self)


PREPROCESS_PRESETS: dict[str, Preprocess] = {
    **{
        name: Preprocess(brightness=m.brightness, ksize=m.smoothing_ksize, sigma=m.smoothing_sigma)
        for name, m in MODALITIES.items()
    },
    "none": Preprocess(ksize=1),
}
"""The paper's per-modality settings (section 4.2, from :data:`ispad_core.modality.MODALITIES`);
``"none"`` only scales and normalises."""


def resolve_preprocess(preprocess: Preprocess | str | None, name: str = "preprocess") -> Preprocess:
    """A :class:`Preprocess` from an instance, a preset name, or None (the ``"none"`` preset)."""
    if preprocess is None:
        return PREPROCESS_PRESETS["none"]
    if isinstance(preprocess, str):
        return PREPROCESS_PRESETS[check_choice(preprocess, name, PREPROCESS_PRESETS)]
    if isinstance(preprocess, Preprocess):
        return preprocess
    raise InputTypeError(f"{name}: expected a Preprocess, a preset name or None, got {type(preprocess).__name__}")


@functools.lru_cache(maxsize=32)
def _gaussian_1d(ksize: int, sigma: float) -> tuple[float, ...]:
    # the library's one Gaussian-tap function (scipy.ndimage's kernel of radius ksize // 2)
    return tuple(float(v) for v in gaussian_kernel1d(ksize, sigma))


@functools.lru_cache(maxsize=32)
def _brightness_table(factor: float) -> torch.Tensor:
    # the library's one brightness table, exactly adjust_brightness (half up, saturating)
    return torch.from_numpy(brightness_table(factor, maxval=255)).float()


def _symmetric_index(n: int, r: int, device: torch.device) -> torch.Tensor:
    # scipy's mode="reflect" (d c b a | a b c d | d c b a), valid for any r by folding
    idx = torch.arange(-r, n + r, device=device)
    period = 2 * n
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - 1 - idx, idx)


def _smooth(x: torch.Tensor, ksize: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian on a float (B, C, H, W) batch with symmetric borders.

    Written as weighted sums of shifted views (2 * ksize multiply-adds per pixel), which is
    several times faster than a one-channel ``conv2d`` on the CPU and as fast on a GPU.
    """
    r = ksize // 2
    h, w = x.shape[-2:]
    weights = _gaussian_1d(ksize, sigma)
    x = x.index_select(-2, _symmetric_index(h, r, x.device))
    rows = weights[0] * x[..., 0:h, :]
    for k in range(1, ksize):
        rows = rows + weights[k] * x[..., k:k + h, :]
    rows = rows.index_select(-1, _symmetric_index(w, r, x.device))
    out = weights[0] * rows[..., 0:w]
    for k in range(1, ksize):
        out = out + weights[k] * rows[..., k:k + w]
    return out


def preprocess_batch(
    images: torch.Tensor,
    preprocess: Preprocess | str | None = None,
    *,
    device: torch.device | str | None = None,
    channels_last: bool = False,
    normalize: bool = True,
) -> torch.Tensor:
    """uint8 patches ``(B, H, W)`` or ``(B, H, W, C)`` -> float32 network input ``(B, C, H, W)``.

    Steps, in the paper's order: move to ``device``; brightness factor with saturation, rounded
    half up to grey levels; Gaussian smoothing in float32 (symmetric borders as
    ``scipy.ndimage``'s ``"reflect"``), rounded half up to grey levels; then, with ``normalize``, ``(x / 255 - mean) / std``.

    Parameters
    ----------
    images : torch.Tensor of uint8, shape (B, H, W) or (B, H, W, C)
        A batch of patches (a trailing channel axis, as the numpy side stores them).
    preprocess : Preprocess, str or None
        Settings, a preset name of :data:`PREPROCESS_PRESETS`, or None (no brightness change and
        no smoothing).
    device : torch.device or str, optional
        Where to compute (default: where ``images`` are).
    channels_last : bool, default False
        Return the batch in ``torch.channels_last`` memory format.
    normalize : bool, default True
        If False, return grey levels (float32 holding whole numbers in ``[0, 255]``); used to
        compare with the numpy functions.

    Returns
    -------
    torch.Tensor of float32, shape (B, C, H, W)

    Raises
    ------
    TypeError
        If ``images`` is not a uint8 tensor.
    ValueError
        If ``images`` is not 3-D or 4-D.

    Examples
    --------
    >>> import torch
    >>> from ispad_core.nn import preprocess_batch
    >>> x = torch.full((2, 8, 8), 100, dtype=torch.uint8)
    >>> preprocess_batch(x, "lsm1", normalize=False)[0, 0, 0, 0].item()
    150.0
    >>> preprocess_batch(x, "lsm1").shape
    torch.Size([2, 1, 8, 8])
    """
    params = resolve_preprocess(preprocess)
    if not isinstance(images, torch.Tensor):
        raise InputTypeError(f"images: expected a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise InputTypeError(f"images: expected dtype torch.uint8, got {images.dtype}")
    if images.ndim not in (3, 4):
        raise InputValueError(f"images: expected a (B, H, W) or (B, H, W, C) batch, got shape {tuple(images.shape)}")
    if device is not None:
        images = images.to(device, non_blocking=True)
    x = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    if params.brightness != 1.0:
        # a 256-entry table computed in float64 on the host: exactly adjust_brightness (half up)
        x = _brightness_table(params.brightness).to(x.device)[x.long()]
    else:
        x = x.float()
    if params.ksize > 1:
        x = torch.floor(_smooth(x, params.ksize, params.sigma) + 0.5).clamp_(0.0, 255.0)
    if normalize:
        x = (x * (1.0 / 255.0) - params.mean) * (1.0 / params.std)
    x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return x
