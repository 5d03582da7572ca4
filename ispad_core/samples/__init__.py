"""Data to run on without a factory's: the procedural screen print, a scan with planted defects,
the built-in sample of the command, and the benchmark whose "real" defects the synthesizer cannot
draw.

- :func:`screen_print` (and its designs :data:`KINDS`): fault-free screen-printed images;
- :func:`inspection_scan`: a large scan with defects planted by the synthesizer
  (:mod:`ispad_core.samples.inspection`);
- :func:`builtin_images`: the built-in sample of the ``ispad`` command (:mod:`ispad_core.samples.builtin`);
- :func:`proxy_benchmark`: the benchmark of :mod:`ispad_core.samples.proxy` (also importable as
  ``ispad_core.proxy``).
"""

from ispad_core._shared.screen_print import KINDS, screen_print
from ispad_core.samples.builtin import BUILTIN_KINDS, BUILTIN_SIDE, builtin_images
from ispad_core.samples.inspection import InspectionScan, inspection_scan
from ispad_core.samples.proxy import ProxyBenchmark, proxy_benchmark

__all__ = [
    "BUILTIN_KINDS",
    "BUILTIN_SIDE",
    "KINDS",
    "InspectionScan",
    "ProxyBenchmark",
    "builtin_images",
    "inspection_scan",
    "proxy_benchmark",
    "screen_print",
]
