"""The balanced synthetic stream: the paper's supervised training data, made from fault-free images.

- :class:`StreamSpec`: what a stream is made of (preset, augmentation, patch size, ...), shared
  by every function below (:mod:`ispad_core.stream.spec`);
- :func:`stream_plan`, :func:`epoch_plan`, :func:`shard_range`: the per-item seeds and defect
  flags, and why any slice of a stream can be made alone (:mod:`ispad_core.stream.plan`);
- :func:`balanced_stream`: the items in batches (:mod:`ispad_core.stream.generation`);
- :class:`SyntheticStream`: item ``i`` on demand, equal to item ``i`` of the file, as a torch
  ``Dataset`` (:mod:`ispad_core.stream.dataset`);
- :func:`write_balanced_stream`: the stream to a file, resumably, on this machine
  (:mod:`ispad_core.stream.local`) or on a Dask cluster (:mod:`ispad_core.stream.dask`);
- :func:`visibility_summary`: the visibility figures of a file's defects (:mod:`ispad_core.stream.summary`).
"""

from ispad_core.stream.dataset import SyntheticStream
from ispad_core.stream.generation import VISIBILITY_FIELDS, balanced_stream, stream_kernels_uncached
from ispad_core.stream.local import StreamInputs, StreamSummary, seed_of_unfinished
from ispad_core.stream.plan import epoch_plan, n_defective, shard_range, stream_plan
from ispad_core.stream.sources import reduce_to_8_bits
from ispad_core.stream.spec import StreamSpec
from ispad_core.stream.summary import VisibilitySummary, visibility_summary
from ispad_core.stream.writing import write_balanced_stream

__all__ = [
    "VISIBILITY_FIELDS",
    "StreamInputs",
    "StreamSpec",
    "StreamSummary",
    "SyntheticStream",
    "VisibilitySummary",
    "balanced_stream",
    "epoch_plan",
    "n_defective",
    "reduce_to_8_bits",
    "seed_of_unfinished",
    "shard_range",
    "stream_kernels_uncached",
    "stream_plan",
    "visibility_summary",
    "write_balanced_stream",
]
