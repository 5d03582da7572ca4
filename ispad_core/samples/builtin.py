"""The built-in sample: what the ``ispad`` command, the demo and the benchmarks run on when given
no images of their own."""

from __future__ import annotations

import numpy as np

from ispad_core._shared.screen_print import screen_print

__all__ = ["BUILTIN_KINDS", "BUILTIN_SIDE", "builtin_images"]

#: The built-in sample used when ``--images`` is not given: designs and side of each image.
BUILTIN_KINDS = ("dots", "lines", "mesh", "mixed")
BUILTIN_SIDE = 640


def builtin_images(seed: int, *, channels: int = 1) -> tuple[list[np.ndarray], list[str]]:
    """The built-in sample: one screen-printed image per design in :data:`BUILTIN_KINDS`.

    Returns the images and their names (which say how to draw each again).

    >>> images, names = builtin_images(0)
    >>> len(images), images[0].shape, names[0]
    (4, (640, 640), 'builtin:screen_print(kind=dots, shape=640x640, rng=[0, 0])')
    """
    images, names = [], []
    for k, kind in enumerate(BUILTIN_KINDS):
        images.append(screen_print((BUILTIN_SIDE, BUILTIN_SIDE), rng=np.random.default_rng([seed, k]), kind=kind, channels=channels))
        names.append(f"builtin:screen_print(kind={kind}, shape={BUILTIN_SIDE}x{BUILTIN_SIDE}, rng=[{seed}, {k}])")
    return images, names
