"""First-call costs paid in the background: the compiled preprocessing kernel and the image decoder.

The first call of a compiled (Numba) function in a process sets up Numba itself (0.3 to 0.7 s on
a shared 2-core machine), and the first image decoded sets up imageio's Pillow plugin and
Pillow's PNG reader (about 20 ms). A command that inspects scans would pay both on its first scan,
while the network waits; started before the model loads (the command line starts it before torch
is imported), :func:`start_warm_up` runs them on another core beside that work.
"""

from __future__ import annotations

import io
import threading

__all__ = ["start_warm_up"]

_lock = threading.Lock()
_thread: threading.Thread | None = None


def start_warm_up() -> threading.Thread:
    """Start the warm-up in a background thread (once per process) and return that thread.

    Later calls return the same thread, started or finished. Not a daemon thread: a process that
    ends early waits for it rather than stopping it inside an import.
    """
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm_up, name="ispad-warm-up")
            _thread.start()
        return _thread


def _warm_up() -> None:
    import imageio.v3 as iio
    from PIL import Image

    from ispad_core._shared.kernels import gaussian_taps

    gaussian_taps(1.0, 1, True)  # the preprocessing's Gaussian taps (ispad_core.preprocess.gaussian_kernel1d)
    png = io.BytesIO()
    Image.new("L", (2, 2)).save(png, format="PNG")
    iio.imread(io.BytesIO(png.getvalue()), plugin="pillow")  # the reader ispad_core.io.read_image uses
