"""Writing the balanced stream on a Dask cluster: one task per part, then a byte-exact merge.

The stream is a pure function of its inputs and its seed, and any item range of it can be made
alone (:mod:`ispad_core.stream`). :func:`write_balanced_stream_distributed` therefore splits it
into ``parts`` contiguous parts (:func:`ispad_core.stream.shard_range`), runs
``write_balanced_stream(..., shard=(k, parts))`` for each as one task on a
``dask.distributed`` cluster, and joins the part files with
``merge_streams(..., copy=True)``, which copies their compressed chunks in order. The result is
the file one process writes with the same seed, byte for byte.

Where the parts go. Into a hidden folder beside the output, named after everything that decides
the parts' bytes (``.NAME.<hash of the inputs, settings, seed and parts>.dask``). It is removed
once the parts are merged, and when a part fails in a way that the same call would repeat (a bad
argument that only a part can check). After any other failure (an interrupt, a storage error
after its retries, workers that kept dying) it is kept, and the same call, with the same seed and
``parts``, resumes it: finished parts are reused and unfinished ones continue from their last
checkpoint. The output's folder must be on storage that every worker sees under the same absolute
path (a network or cluster file system); a worker that does not see it fails the call with an
error that says so.

Lost workers. A task whose worker dies (killed, out of memory, pre-empted) is run again on
another worker by the scheduler, up to its ``distributed.scheduler.allowed-failures`` (default 3);
an ``OSError`` raised inside a task (a hiccup of the shared file system) is retried ``retries``
times. Argument errors are not retried: they would fail the same way again. Every attempt of
part ``k`` first takes an OS lock (``part-K.claim.lock`` in the parts folder): the holder writes
``part-K.h5`` and resumes the unfinished ``part-K.h5.part`` that a dead attempt left (the lock of
a dead process is released by the OS); an attempt that finds the lock held, because the scheduler
gave up on a worker that is in fact still running, writes a file of its own
(``part-K.attempt-ID.h5``) instead. Two attempts never write the same file, and whichever
finishes is byte-identical to the other.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import threading
import time
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError, SetupError
from ispad_core._shared.files import OutputBusyError, current_umask, check_output_path, exclusive_lock
from ispad_core._shared.progress import progress
from ispad_core._shared.validation import check_int, warn_renamed
from ispad_core.stream.generation import make_generator
from ispad_core.stream.local import StreamInputs, StreamSummary, fresh_seed, write_local
from ispad_core.stream.plan import shard_range
from ispad_core.stream.spec import StreamSpec, split_settings

__all__ = ["write_balanced_stream_distributed"]

_OPTIONS = frozenset({"rois", "names", "roi_names", "callback", "spec"})
"""The keyword options it takes besides its own and the StreamSpec fields (as write_balanced_stream)."""

_ONE_PART_AT_A_TIME = threading.Lock()
"""Held by a task while it writes its part: one part at a time per worker process, whatever the
worker's thread count. Numba's ``workqueue`` threading layer (the one left where neither TBB nor
OpenMP is installed) aborts the process when two threads run parallel kernels at once, and a part's
kernels use all of the process's cores anyway."""

_PARTS_PER_THREAD = 4
"""Default parts per worker thread: enough to balance uneven workers, few enough to merge quickly."""

_LOCK_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def _import_distributed():
    try:
        import distributed
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            'client: writing on a Dask cluster needs dask.distributed; pip install "ispad-core[dask]"'
        ) from None
    return distributed


@dataclass(frozen=True)
class _PartResult:
    """What one task reports back: its file and the counts of the items it generated."""

    k: int
    path: str
    n_resumed: int
    n_redrawn: int
    timings: dict


@dataclass(frozen=True)
class _PartFailure:
    """A task's non-retryable error, returned as a value so that Dask does not retry it."""

    k: int
    error: BaseException
    where: str


def _add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, also on Python 3.10 (where tracebacks do not show it)."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]


def _part_name(k: int) -> str:
    return f"part-{k:05d}"


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:  # not inside a Dask worker (a direct call, as the tests make)
        return f"process {os.getpid()}"


def _write_part(
    inputs: StreamInputs, *, folder: str, k: int, parts: int, n: int, seed: int, spec: StreamSpec, callback: Any
) -> _PartResult | _PartFailure:
    """One attempt at part ``k``: the body of a Dask task (see the module docstring).

    Returns a :class:`_PartResult`, or a :class:`_PartFailure` for an error that another attempt
    would repeat; raises ``OSError`` (and lets a dying worker die) so that Dask retries.
    """
    where = _worker_address()
    base = Path(folder)
    if not base.is_dir():  # no retry helps: another attempt may land on the same worker
        error = FileNotFoundError(
            f"path: the parts folder {base} is not visible on worker {where}; the output must be "
            "on storage that all workers see under the same absolute path"
        )
        return _PartFailure(k, error, where)
    try:
        with _ONE_PART_AT_A_TIME:
            return _write_part_locked(inputs, base, k=k, parts=parts, n=n, seed=seed, spec=spec, callback=callback)
    except OSError:
        raise  # the shared file system: worth another attempt
    except Exception as exc:
        return _PartFailure(k, exc, where)


def _write_part_locked(
    inputs: StreamInputs, base: Path, *, k: int, parts: int, n: int, seed: int, spec: StreamSpec, callback: Any
) -> _PartResult:
    """:func:`_write_part` under the process's part lock: claim, then write, resume or find the part."""
    final = base / f"{_part_name(k)}.h5"
    with contextlib.ExitStack() as stack:
        target = final
        try:
            stack.enter_context(exclusive_lock(base / f"{_part_name(k)}.claim", name="part"))
        except OutputBusyError:  # another attempt of this part is still running
            target = base / f"{_part_name(k)}.attempt-{uuid.uuid4().hex[:12]}.h5"
        except OSError as exc:
            if exc.errno not in _LOCK_UNSUPPORTED:
                raise
            target = base / f"{_part_name(k)}.attempt-{uuid.uuid4().hex[:12]}.h5"  # no locks here
        if target == final and final.exists():  # an earlier attempt finished, then its worker died
            a, b = shard_range(n, (k, parts))
            return _PartResult(k, str(final), b - a, 0, {})
        summary = write_local(
            target, inputs, n, seed=seed, spec=spec, shard=(k, parts), overwrite=False, resume=target == final,
            callback=callback,
        )
    return _PartResult(k, str(summary.path), summary.n_resumed, summary.n_redrawn, dict(summary.timings))


def _environment() -> dict[str, str]:
    """Versions of what decides a part's bytes: the library, its kernels' compiler, the codecs."""
    import zlib

    import h5py
    import numba

    from ispad_core._shared.version import __version__

    env = {
        "ispad_core": __version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "h5py": h5py.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }
    try:
        import isal

        env["isal"] = getattr(isal, "__version__", "unknown")
    except ImportError:
        pass
    return env


def _check_environments(here: dict[str, str], workers: dict[str, dict[str, str]]) -> None:
    """Refuse workers whose versions differ from this machine's: their parts could differ in bytes."""
    for address, env in sorted(workers.items()):
        diff = [
            f"{key} {env.get(key, 'missing')} there, {here.get(key, 'missing')} here"
            for key in sorted(set(here) | set(env))
            if env.get(key) != here.get(key)
        ]
        if diff:
            raise SetupError(
                f"client: worker {address} runs other versions than this machine ({'; '.join(diff)}); "
                "its parts would not be the bytes this machine writes. Install the same versions on all workers"
            )


def _job_token(n: int, seed: int, parts: int, inputs: StreamInputs, spec: StreamSpec) -> str:
    """A name for the parts folder that changes with anything that decides the parts' bytes."""
    digest = hashlib.sha256()

    def add(value: Any) -> None:
        if isinstance(value, np.ndarray):
            digest.update(f"array{value.shape}{value.dtype.str}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, (list, tuple)):
            digest.update(f"{type(value).__name__}{len(value)}[".encode())
            for item in value:
                add(item)
            digest.update(b"]")
        else:
            digest.update(repr(value).encode())
        digest.update(b";")

    from ispad_core._shared.version import __version__

    images, rois = inputs.images, inputs.rois
    add(("ispad_core", __version__, n, seed, parts))
    add(images if isinstance(images, np.ndarray) else list(images))
    add(rois if rois is None or isinstance(rois, np.ndarray) else list(rois))
    add(("names", inputs.names, inputs.roi_names))
    for key, value in sorted(vars(spec).items()):
        add((key, value))
    return digest.hexdigest()[:16]


def _check_no_running_attempts(folder: Path) -> None:
    """Refuse to remove a parts folder in which a task of an earlier call still writes its part.

    A cancelled Dask task that has started runs to its end; it holds its part's claim lock.
    """
    for lock in sorted(folder.glob("*.claim.lock")):
        try:
            with exclusive_lock(lock.with_name(lock.name[: -len(".lock")]), name="path"):
                pass
        except OutputBusyError:
            raise OutputBusyError(
                f"path: a task of an earlier run still writes its part in {folder}; wait for it to end "
                "(or cancel it on the cluster), or resume instead of starting over"
            ) from None


def _parts_folder(path: Path, token: str, *, resume: bool) -> Path:
    """The hidden folder of this job's parts beside ``path``: reused when resuming, else fresh."""
    folder = path.with_name(f".{path.name}.{token}.dask")
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):  # a link or a file in the way: never write through it
            raise InputValueError(f"path: {folder} is in the way of the parts folder and is not a folder; remove it")
        if not resume:
            _check_no_running_attempts(folder)
            shutil.rmtree(folder)
            st = None
    if st is None:
        folder.mkdir()
        os.chmod(folder, 0o777 & ~current_umask())  # as a folder made by hand: workers may run as another user
    return folder


def _check_options(options: dict, images: Any) -> tuple[StreamInputs, StreamSpec, Any]:
    """The inputs, the stream's spec and the callback from the keyword options of a call."""
    spec = StreamSpec.build(options.pop("spec", None), split_settings(options), "write_balanced_stream_distributed")
    for key in options:
        if key == "shard":
            raise InputTypeError("shard: not accepted by the distributed writer (the parts are set by parts=)")
        if key not in _OPTIONS:
            raise InputTypeError(f"{key}: not a keyword argument of write_balanced_stream")
    inputs = StreamInputs(images, options.get("rois"), options.get("names"), options.get("roi_names"))
    return inputs, spec, options.get("callback")


def write_balanced_stream_distributed(
    path: str | os.PathLike,
    images: Any,
    n: int,
    *,
    client: Any,
    parts: int | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    resume: bool = True,
    retries: int = 3,
    verbose: bool = False,
    **options: Any,
) -> StreamSummary:
    """Write a balanced stream to an HDF5 file with a Dask cluster, one task per part.

    The file equals, byte for byte, the one :func:`ispad_core.stream.write_balanced_stream`
    writes in one process with the same arguments and seed (see the module docstring for how
    the parts are written, retried and merged).

    Parameters
    ----------
    path : str or os.PathLike
        Output file. Its folder must be on storage that every worker sees under the same
        absolute path; the parts are written to a hidden folder beside it.
    images : numpy.ndarray or sequence of numpy.ndarray
        Fault-free uint8 images, each ``(H, W)`` or ``(H, W, 3)``, as for
        :func:`ispad_core.stream.balanced_stream`; sent to the cluster once.
    n : int
        Stream length.
    client : dask.distributed.Client
        A client connected to the cluster (``Client("tcp://scheduler:8786")``).
    parts : int, optional
        Number of parts (tasks), from 1 to ``n``; None: four per worker thread of the cluster
        now, at most ``n``. More parts than worker threads balance the load and make a lost
        worker cheaper; each part costs one file, one open file during the merge, and one
        computation of the stream's plan (the seeds of all ``n`` items). The file does not
        depend on it.
    seed : int, optional
        The stream's seed; None draws one on this machine. Recorded in the file and the summary.
    overwrite : bool
        Replace an existing ``path``.
    resume : bool
        Reuse the parts that an interrupted or failed call with the same arguments, seed and
        ``parts`` left in its parts folder (default); False starts this job's parts afresh.
    retries : int
        How often a task that raised an ``OSError`` is run again (a worker that dies is
        rescheduled by Dask's ``distributed.scheduler.allowed-failures`` instead).
    verbose : bool
        Show a progress bar over finished parts on stderr (``show_progress``, its old name, still
        works and warns).
    **options
        As for :func:`ispad_core.stream.write_balanced_stream`: ``rois``, ``names``,
        ``roi_names``, ``spec`` and the fields of :class:`~ispad_core.stream.StreamSpec` as
        keywords; ``callback`` runs on the workers, as ``callback(done, total)`` for the part at
        hand. Not ``shard``.

    Returns
    -------
    StreamSummary
        For the whole stream: ``n_resumed`` counts items that a retried task took over from its
        dead predecessor, ``n_redrawn`` and the stage ``timings`` are summed over the parts'
        generated items (``timings`` are seconds of work on all workers together, plus
        ``merge``, seconds on this machine); ``mean_attempts`` is over all defective items.

    Raises
    ------
    TypeError, ValueError
        For bad arguments, checked here before anything is sent to the cluster (those that only
        a part can check are raised from the first part that fails, with the part named).
    RuntimeError
        If a worker runs other versions of ispad_core, NumPy, Numba, h5py or the codecs than
        this machine (its part could differ in bytes).
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    OSError
        If a part failed on the shared storage more than ``retries`` times.
    distributed.KilledWorker
        If the workers running one part died more often than the scheduler allows.

    Examples
    --------
    >>> from distributed import Client, LocalCluster                   # doctest: +SKIP
    >>> from ispad_core.samples import screen_print                     # doctest: +SKIP
    >>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
    ...     s = write_balanced_stream_distributed(
    ...         "stream.h5", screen_print((640, 640), rng=0), 4096, client=client, parts=8, seed=0
    ...     )                                                           # doctest: +SKIP
    """
    t_start = time.perf_counter()
    distributed = _import_distributed()
    if not isinstance(client, distributed.Client):
        raise InputTypeError(f"client: expected a dask.distributed.Client, got {type(client).__name__}")
    n = check_int(n, "n", minimum=1)
    parts = _check_parts(parts, n, client)
    retries = check_int(retries, "retries", minimum=0)
    if not isinstance(resume, bool):
        raise InputTypeError(f"resume: expected a bool, got {type(resume).__name__}")
    if "show_progress" in options:
        warn_renamed("write_balanced_stream_distributed", "show_progress", "verbose")
        verbose = bool(options.pop("show_progress"))
    inputs, spec, callback = _check_options(options, images)
    seed = check_int(fresh_seed() if seed is None else seed, "seed", minimum=0, maximum=2**63 - 1)
    path = Path(os.path.abspath(check_output_path(path, "path", overwrite=overwrite)))
    # Check the images, ROIs and synthesis settings here, before the cluster sees them (this
    # builds the stream's plan and generates nothing).
    make_generator(inputs.images, inputs.rois, n, seed, spec, inputs.names)
    _check_workers(client)
    with exclusive_lock(path.with_name(f".{path.name}.dask"), name="path"):
        token = _job_token(n, seed, parts, inputs, spec)
        job = _Job(_parts_folder(path, token, resume=resume), token, inputs, n, seed, parts, spec, callback, retries)
        results, merge_seconds = _write_and_merge(client, distributed, job, path, overwrite=overwrite, verbose=verbose)
    return _summary(path, job, results, merge_seconds, t_start)


def _check_parts(parts: Any, n: int, client: Any) -> int:
    if parts is None:
        parts = min(n, _PARTS_PER_THREAD * max(1, sum(client.nthreads().values())))
    if isinstance(parts, bool) or not isinstance(parts, (int, np.integer)):
        raise InputTypeError(f"parts: expected an int, got {type(parts).__name__}")
    parts = int(parts)
    if not 1 <= parts <= n:
        raise InputValueError(f"parts: expected 1 to {n} parts (each needs at least one of the n = {n} items), got {parts}")
    return parts


def _check_workers(client: Any) -> None:
    """Every worker must run the versions this machine runs (its part could differ in bytes)."""
    try:
        workers = client.run(_environment)
    except Exception as exc:  # e.g. a worker without ispad_core: it cannot unpickle the call
        raise SetupError(
            f'client: could not ask the workers for their versions ({type(exc).__name__}: {exc}); install '
            '"ispad-core[dask]" in the same versions on every worker'
        ) from exc
    _check_environments(_environment(), workers)


@dataclass(frozen=True)
class _Job:
    """One call's parts: where they go, what they are made of, how often a failed one is retried."""

    folder: Path
    token: str
    inputs: StreamInputs
    n: int
    seed: int
    parts: int
    spec: StreamSpec
    callback: Any
    retries: int


class _Tasks:
    """The part tasks of a job on the cluster, submitted again when the inputs they wait on are lost."""

    def __init__(self, client: Any, job: _Job) -> None:
        self.client, self.job = client, job
        self.run = uuid.uuid4().hex[:8]  # task keys of this call: a resumed job must not meet its old tasks
        self.futures: list = []
        self.owner: dict[str, tuple[int, int]] = {}  # future key -> (part, scatter generation)
        # The inputs go to every worker (broadcast): a worker that dies then takes no copy with it
        # that the retried part needs. If every holder is lost all the same (a one-worker
        # cluster), the parts waiting on them are cancelled by the scheduler; they are scattered
        # again and resubmitted, as often as ``retries`` allows.
        self.scatters = [self._scatter()]

    def _scatter(self) -> Any:
        return self.client.scatter(self.job.inputs, broadcast=True, hash=False)

    def submit(self, k: int) -> Any:
        job, generation = self.job, len(self.scatters) - 1
        future = self.client.submit(
            _write_part,
            self.scatters[generation],
            folder=str(job.folder),
            k=k,
            parts=job.parts,
            n=job.n,
            seed=job.seed,
            spec=job.spec,
            callback=job.callback,
            key=f"ispad-synth-{job.token}-{self.run}-{_part_name(k)}" + (f"-again{generation}" if generation else ""),
            pure=False,
            retries=job.retries,
        )
        self.owner[future.key] = (k, generation)
        self.futures.append(future)
        return future

    def resubmit_if_lost(self, future: Any, pending: Any) -> bool:
        """For a part cancelled because its inputs were lost: scatter them again and resubmit it."""
        k, generation = self.owner[future.key]
        if len(self.scatters) > self.job.retries:
            return False
        if generation == len(self.scatters) - 1:
            self.scatters.append(self._scatter())
        pending.add(self.submit(k))
        return True


def _collect(tasks: _Tasks, distributed: Any, path: Path, verbose: bool) -> dict[int, _PartResult]:
    """Wait for every part; a part's own error (another attempt would repeat it) is raised, noted."""
    job = tasks.job
    pending = distributed.as_completed([tasks.submit(k) for k in range(job.parts)])
    results: dict[int, _PartResult] = {}
    bar = progress(total=job.parts, desc=f"ispad synth {path.name}", unit="part", disable=not verbose)
    try:
        for future in pending:
            try:
                result = future.result()
            except CancelledError:  # its inputs were lost with the workers that held them
                if not tasks.resubmit_if_lost(future, pending):
                    raise
                continue
            if isinstance(result, _PartFailure):
                a, b = shard_range(job.n, (result.k, job.parts))
                _add_note(result.error, f"(in part {result.k} of {job.parts}, items [{a}, {b}), on worker {result.where})")
                result.error.part_failed = True
                raise result.error
            results[result.k] = result
            bar.update(1)
    finally:
        bar.close()
    return results


def _write_and_merge(client: Any, distributed: Any, job: _Job, path: Path, *, overwrite: bool, verbose: bool):
    """Run the parts, merge them into ``path``; keep the parts folder after a failure worth resuming."""
    from ispad_core.io import merge_streams

    tasks = _Tasks(client, job)
    keep = False
    try:
        results = _collect(tasks, distributed, path, verbose)
        t_merge = time.perf_counter()
        merge_streams([results[k].path for k in range(job.parts)], path, copy=True, overwrite=overwrite)
        return results, time.perf_counter() - t_merge
    except BaseException as exc:
        part_failed = getattr(exc, "part_failed", False)  # an error that the same call would meet again
        keep = not part_failed and any(p.suffix in (".h5", ".part") for p in job.folder.iterdir())
        if keep:
            _add_note(
                exc,
                f"(the finished parts are kept in {job.folder}: the same call, with the same seed and "
                "parts, resumes them)"
            )
        raise
    finally:
        if tasks.futures:
            client.cancel(tasks.futures)
        if not keep:
            shutil.rmtree(job.folder, ignore_errors=True)


def _summary(path: Path, job: _Job, results: dict, merge_seconds: float, t_start: float) -> StreamSummary:
    from ispad_core.io import open_stream

    with open_stream(path) as stream:
        labels = stream.labels
        attempts = stream.field("attempts")
    defective = labels == 1
    timings: dict[str, float] = {}
    for r in results.values():
        for key, value in r.timings.items():
            timings[key] = timings.get(key, 0.0) + value
    timings["merge"] = merge_seconds
    n_resumed = sum(r.n_resumed for r in results.values())
    seconds = time.perf_counter() - t_start
    return StreamSummary(
        path=path,
        n_items=job.n,
        n_resumed=n_resumed,
        n_defective=int(defective.sum()),
        n_redrawn=sum(r.n_redrawn for r in results.values()),
        mean_attempts=float(attempts[defective].mean()) if attempts is not None and defective.any() else 0.0,
        seconds=seconds,
        rate=(job.n - n_resumed) / seconds if seconds > 0 else 0.0,
        seed=job.seed,
        timings=timings,
    )
