"""The balanced synthetic stream: the paper's supervised training data, made from fault-free images.

See :mod:`ispad_core.stream.generation` for how a stream is drawn and why any slice of it can be
made alone; :func:`write_balanced_stream` writes it to a file (on a Dask cluster with
``client=``), :class:`SyntheticStream` draws it on demand.
"""

from ispad_core.stream.generation import (
    VISIBILITY_FIELDS,
    StreamSummary,
    SyntheticStream,
    VisibilitySummary,
    balanced_stream,
    epoch_plan,
    n_defective,
    reduce_to_8_bits,
    seed_of_unfinished,
    shard_range,
    stream_plan,
    visibility_summary,
    write_balanced_stream,
)

__all__ = [
    "StreamSummary",
    "SyntheticStream",
    "VisibilitySummary",
    "balanced_stream",
    "epoch_plan",
    "reduce_to_8_bits",
    "shard_range",
    "stream_plan",
    "visibility_summary",
    "write_balanced_stream",
]
