"""Data to run on without a factory's: the procedural screen print, a scan with planted defects,
and the built-in benchmark whose "real" defects the synthesizer cannot draw.

- :func:`screen_print` (and its designs :data:`KINDS`): fault-free screen-printed images;
- :func:`inspection_scan`: a large scan with defects planted by the synthesizer;
- :func:`proxy_benchmark`: the benchmark of :mod:`ispad_core.samples.proxy`.
"""

from ispad_core.samples.inspection import KINDS, InspectionScan, inspection_scan, screen_print
from ispad_core.samples.proxy import ProxyBenchmark, proxy_benchmark

__all__ = ["KINDS", "InspectionScan", "ProxyBenchmark", "inspection_scan", "proxy_benchmark", "screen_print"]
