"""Writing a stream (or one shard of it) to an HDF5 file on this machine, resumably."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core._shared.progress import progress
from ispad_core._shared.validation import check_int
from ispad_core.io import StreamWriter, part_path
from ispad_core.stream.generation import VISIBILITY_FIELDS, make_generator
from ispad_core.stream.plan import shard_range
from ispad_core.stream.spec import StreamSpec

__all__ = ["StreamInputs", "StreamSummary", "seed_of_unfinished", "write_local"]


@dataclass(frozen=True)
class StreamInputs:
    """The images a stream is cut from, with their ROIs and the names the file records for both."""

    images: Any
    rois: Any = None
    names: Sequence[str] | None = None
    roi_names: Sequence[str | None] | None = None


@dataclass(frozen=True)
class StreamSummary:
    """What :func:`write_balanced_stream` did.

    Attributes
    ----------
    path : pathlib.Path
        The file written.
    n_items : int
        Items in the file.
    n_resumed : int
        Items taken over from an interrupted run (not generated again).
    n_defective : int
        Defective items in the file.
    n_redrawn : int
        Defective items of this run whose first patch gave no visible defect.
    mean_attempts : float
        Mean synthesis attempts per defective item of this run (over all its patches).
    seconds : float
        Wall time of this run.
    rate : float
        Items generated and written per second in this run.
    seed : int
        The stream's seed (recorded in the file).
    timings : dict
        Seconds per stage: extract, augment, synthesize, compress, write.
    """

    path: Path
    n_items: int
    n_resumed: int
    n_defective: int
    n_redrawn: int
    mean_attempts: float
    seconds: float
    rate: float
    seed: int
    timings: dict = field(default_factory=dict)

    def __str__(self) -> str:
        resumed = f" ({self.n_resumed} resumed)" if self.n_resumed else ""
        return (
            f"wrote {self.n_items} patches to {self.path}{resumed}: {self.n_defective} with synthetic "
            f"defects ({self.n_redrawn} redrawn on another patch), {self.mean_attempts:.2f} synthesis "
            f"attempts per defect, {self.rate:,.0f} patches/s, seed {self.seed}"
        )


def _fingerprint(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


def seed_of_unfinished(path: Path) -> int | None:
    """The seed of an unfinished write of ``path`` (its ``.part`` file), or None."""
    part = part_path(path)
    if part.is_symlink() or not part.is_file():  # the writer refuses a link there; never read through one
        return None
    try:
        with h5py.File(part, "r") as f:
            return int(f.attrs["seed"])
    except Exception:
        return None


def fresh_seed() -> int:
    """A seed from the OS's entropy (recorded in the file, so that the stream can be written again)."""
    return int(np.random.SeedSequence().generate_state(1, np.uint32)[0])


def _provenance(gen: Any, inputs: StreamInputs) -> tuple[list, list | None]:
    """The ``sources`` and ``rois`` attributes: each image's and ROI's name and SHA-256 prefix."""
    sources_meta = []
    for j, s in enumerate(gen.sources):
        name = inputs.names[j] if inputs.names is not None else f"images[{j}]"
        sources_meta.append({"name": str(name), "shape": list(s.image.shape), "sha256": _fingerprint(s.image)})
        if s.bits != 8:  # only then: the provenance of 8-bit files keeps its bytes
            sources_meta[-1]["bits"] = s.bits
    rois, roi_names = inputs.rois, inputs.roi_names
    if rois is None:
        return sources_meta, None
    roi_meta: list = []
    for j, roi in enumerate([rois] if isinstance(rois, np.ndarray) else list(rois)):
        if roi is None:
            roi_meta.append(None)
        else:
            name = roi_names[j] if roi_names is not None and roi_names[j] is not None else f"rois[{j}]"
            roi_meta.append({"name": str(name), "sha256": _fingerprint(np.asarray(roi) != 0)})
    return sources_meta, roi_meta


def _stream_attrs(gen: Any, inputs: StreamInputs, spec: StreamSpec, *, seed: int, n: int, shard: Any) -> dict:
    """The file's attributes: the seed, the part, the settings and the provenance of the inputs."""
    start, stop = shard_range(n, shard)
    sources_meta, roi_meta = _provenance(gen, inputs)
    preset_name = spec.preset if isinstance(spec.preset, str) else "custom"
    aug_name = "none" if gen.augment is None else (spec.augment if isinstance(spec.augment, str) else "custom")
    attrs = {
        "seed": seed,
        "n_total": n,
        "item_start": start,
        "item_stop": stop,
        "shard": "0/1" if shard is None else f"{shard[0]}/{shard[1]}",
        "preset_name": preset_name,
        "preset": gen.params.to_dict(),
        "augment_name": aug_name,
        "augment": None if gen.augment is None else gen.augment.to_dict(),
        "patch_size": spec.size,
        "min_roi_fraction": spec.min_roi_fraction,
        "max_redraws": spec.max_redraws,
        "defect_fraction": spec.defect_fraction,
        "sources": sources_meta,
        "rois": roi_meta,
    }
    if gen.min_contrast is not None:  # absent otherwise: files written without it keep their bytes
        attrs["min_contrast"] = gen.min_contrast
    if shard is not None and start == 0 and stop == n:
        attrs["shard"] = "0/1"  # a single part is the whole stream
    return attrs


def write_local(
    path: str | Path,
    inputs: StreamInputs,
    n: int,
    *,
    seed: int | None,
    spec: StreamSpec,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    resume: bool = True,
    verbose: bool = False,
    callback: Callable[[int, int], None] | None = None,
) -> StreamSummary:
    """:func:`ispad_core.stream.write_balanced_stream` on this machine (its arguments, checked here)."""
    t_start = time.perf_counter()
    n = check_int(n, "n", minimum=1)
    path = Path(path)
    if seed is None:
        seed = seed_of_unfinished(path) if resume else None
        if seed is None:
            seed = fresh_seed()
    seed = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
    start, stop = shard_range(n, shard)
    if stop == start:
        raise InputValueError(f"shard: part {shard[0]} of {shard[1]} of a {n}-item stream is empty; use fewer parts")
    gen = make_generator(inputs.images, inputs.rois, n, seed, spec, inputs.names)
    writer = StreamWriter(
        path,
        n=stop - start,
        image_shape=(spec.size, spec.size, *gen.sources[0].image.shape[2:]),
        attrs=_stream_attrs(gen, inputs, spec, seed=seed, n=n, shard=shard),
        fields=("seeds", "sources", "origins", "attempts", *VISIBILITY_FIELDS),
        compression=spec.compression,
        batch_size=spec.batch_size,
        overwrite=overwrite,
        resume=resume,
        verbose=verbose,
    )
    resumed = writer.n_done
    counts = _write_items(writer, gen, start, stop, spec.batch_size, verbose=verbose, callback=callback)
    seconds = time.perf_counter() - t_start
    n_redrawn, attempts_sum, n_def_run = counts
    return StreamSummary(
        path=path,
        n_items=stop - start,
        n_resumed=resumed,
        n_defective=int(gen.defective[start:stop].sum()),
        n_redrawn=n_redrawn,
        mean_attempts=attempts_sum / n_def_run if n_def_run else 0.0,
        seconds=seconds,
        rate=(stop - start - resumed) / seconds if seconds > 0 else 0.0,
        seed=seed,
        timings={**gen.timings, **writer.timings},
    )


def _write_items(writer: Any, gen: Any, start: int, stop: int, batch_size: int, *, verbose: bool, callback: Any):
    """Make and append the items ``[start + done, stop)``, checkpointing each batch; commit at the end.

    Returns ``(redrawn, attempts, defective)`` summed over the items made by this call.
    """
    resumed = writer.n_done
    n_redrawn = attempts_sum = n_def_run = 0
    bar = progress(total=stop - start, desc=f"ispad synth {writer.path.name}", unit="patch", disable=not verbose)
    bar.update(resumed)
    try:
        for a in range(start + resumed, stop, batch_size):
            b = min(a + batch_size, stop)
            batch = gen.make(a, b)
            writer.append(
                batch.images,
                batch.masks,
                batch.labels,
                seeds=batch.seeds,
                sources=batch.sources,
                origins=batch.origins,
                attempts=batch.attempts,
                **batch.visibility,
            )
            n_redrawn += batch.redrawn
            attempts_sum += int(batch.attempts.sum())
            n_def_run += int(batch.labels.sum())
            bar.update(b - a)
            if callback is not None:
                callback(b - start, stop - start)
        writer.commit()
    finally:
        bar.close()
        writer.close()
    return n_redrawn, attempts_sum, n_def_run
