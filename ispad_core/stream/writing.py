"""Writing a balanced stream to an HDF5 file: on this machine, or on a Dask cluster."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import take_renamed
from ispad_core.stream.local import StreamInputs, StreamSummary, write_local
from ispad_core.stream.spec import StreamSpec, split_settings

__all__ = ["write_balanced_stream"]

#: The keyword options of write_balanced_stream besides the StreamSpec fields.
_OPTIONS = frozenset({"roi_names", "verbose", "callback", "parts", "retries"})


def write_balanced_stream(
    path: str | os.PathLike,
    images: Any,
    n: int,
    *,
    rois: Any = None,
    seed: int | None = None,
    names: Sequence[str] | None = None,
    spec: StreamSpec | None = None,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    resume: bool = True,
    client: Any = None,
    **options: Any,
) -> StreamSummary:
    """Write a balanced stream (or one shard of it) to an HDF5 file, resumably.

    The file has the layout of :func:`ispad_core.io.write_stream`, with the per-item provenance
    ``seeds``, ``sources`` (index into the attribute ``sources``), ``origins`` and ``attempts``,
    the per-item visibility figures of each defect (0 for good items): ``accepted`` (it passed
    the synthesizer's test), ``ssr`` (sum of squared residuals, 8-bit grey levels squared),
    ``cnr`` (contrast-to-noise ratio against the background ring) and ``contrast`` (mean absolute
    change of the mask's pixels, 8-bit grey levels), all of the accepted draw;
    :func:`visibility_summary` sums them up. The attributes are ``seed``, ``n_total``, ``item_start``, ``item_stop``, ``shard``,
    ``preset_name``, ``preset`` (JSON), ``augment_name``, ``augment`` (JSON), ``patch_size``,
    ``min_roi_fraction``, ``max_redraws``, ``sources`` and ``rois`` (names and SHA-256 prefixes
    of the pixels). An interrupted write resumes when called again with the same arguments, and the
    result is byte-identical to an uninterrupted write; shards merged with
    :func:`ispad_core.io.merge_streams` (``copy=True``) are byte-identical to the whole.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    images, n, rois
        As :func:`balanced_stream`.
    seed : int, optional
        The stream's seed. None: the seed of an unfinished write of ``path`` if there is one, else
        a fresh one from the OS; either way it is recorded in the file and the summary.
    names : sequence of str, optional
        Names of the images for the file's provenance (e.g. their file names); errors about an
        image name it too.
    spec : StreamSpec, optional
        What the stream is made of (as for :func:`balanced_stream`), with ``batch_size`` (items
        per batch and checkpoint) and ``compression`` (see :class:`ispad_core.io.StreamWriter`).
        Its settings are recorded in the file's attributes.
    shard : (int, int), optional
        ``(k, parts)``: write only part ``k`` (from 0) of ``parts`` (see :func:`shard_range`).
    overwrite : bool
        Replace an existing ``path`` (and discard an unfinished write with other settings).
    resume : bool
        Continue an unfinished write with the same settings (default).
    client : dask.distributed.Client, optional
        Write on a Dask cluster (``pip install "ispad-core[dask]"``), one task per part, merged
        into the file one process writes, byte for byte: this call hands everything to
        :func:`ispad_core.stream.dask.write_balanced_stream_distributed` (see ``docs/dask.md``).
    **options
        Fields of :class:`StreamSpec` as keywords (``size=64``), over those of ``spec``; and

        - ``roi_names`` (sequence of str): names of the ROIs for the file's provenance;
        - ``verbose`` (bool): show a progress bar with rate and ETA on stderr (``show_progress``,
          its old name, still works and warns);
        - ``callback`` (callable): called as ``callback(done, total)`` after each batch is
          checkpointed, with the items of this part written so far (resumed ones included) and
          the part's size. An exception it raises stops the write at that safe point, keeping the
          finished batches for a resume (the ``ispad`` command uses it to turn Ctrl-C into a
          clean stop);
        - ``parts`` (int), ``retries`` (int, default 3): with ``client``, the number of parts
          (tasks; the file does not depend on it) and how often a part that failed on the shared
          storage is run again.

    Returns
    -------
    StreamSummary

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ispad_core.samples import screen_print
    >>> from ispad_core.io import open_stream
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "stream.h5"
    >>> summary = write_balanced_stream(out, screen_print((160, 160), rng=0), 6, size=64, seed=0)
    >>> with open_stream(out) as s:
    ...     print(len(s), int(s.labels.sum()), s.attrs["seed"], s.attrs["preset_name"])
    6 3 0 mixed
    """
    take_renamed(options, "write_balanced_stream", "show_progress", "verbose")
    spec = StreamSpec.build(spec, split_settings(options), "write_balanced_stream")
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InputTypeError(f"write_balanced_stream() got an unexpected keyword argument {unknown[0]!r}")
    inputs = StreamInputs(images, rois, names, options.get("roi_names"))
    if client is not None:
        if shard is not None:
            raise InputValueError("shard: not with client (the cluster writes every part of the stream)")
        from ispad_core.stream.dask import write_balanced_stream_distributed

        return write_balanced_stream_distributed(
            path, images, n, client=client, seed=seed, overwrite=overwrite, resume=resume, rois=rois, names=names,
            spec=spec, **options,
        )
    return write_local(
        path, inputs, n, seed=seed, spec=spec, shard=shard, overwrite=overwrite, resume=resume,
        verbose=bool(options.get("verbose", False)), callback=options.get("callback"),
    )
