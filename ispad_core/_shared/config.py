"""Numba compilation flags, in one place, and where parallel kernels may run.

Every kernel in the package is decorated with ``@njit(**NJIT)`` (serial) or
``@njit(**NJIT_PARALLEL)`` (``prange`` over independent items). ``fastmath`` is never turned
on: its ``nnan``/``ninf`` flags let LLVM assume away the NaN and inf checks that our
validation relies on, and reassociation would make float sums depend on vectorisation width.
The one exception is :data:`NJIT_EXACT_FMA`, contraction into fused multiply-adds alone, for a
kernel whose every intermediate is an exactly representable integer (so fusing cannot change a
bit of the result).

``cache=True`` writes the compiled machine code beside the module (``__pycache__``), so only
the first call on a machine pays the compile time.

A parallel kernel that a data-loading worker process calls has a serial twin (the same item
function in a plain loop, so the same bytes), and :func:`run_serial` says when to call it: in a
torch ``DataLoader`` worker, and in any process forked from one that imported this package. A
parallel kernel in such a process would start a thread pool of its own beside the other
workers and the training threads (two cores run four or more busy threads), and in a forked
process it is not even safe: Numba's threading layers keep their state across ``fork``, and
Numba's OpenMP layer binds to the GNU OpenMP runtime that torch has loaded and, after the first
training step, started; a forked child that enters a parallel region of that runtime waits
forever for the parent's threads, which a child does not have. Workers parallelise over
items by being several processes.
"""

from __future__ import annotations

import os
import sys

NJIT: dict = {"cache": True, "nogil": True, "error_model": "numpy"}
"""Flags for serial kernels."""

NJIT_PARALLEL: dict = {**NJIT, "parallel": True}
"""Flags for kernels that ``prange`` over independent items."""

NJIT_EXACT_FMA: dict = {**NJIT, "fastmath": {"contract"}}
"""Flags for a serial kernel whose float arithmetic is exact (integers below 2**53 throughout):
only ``contract`` (fused multiply-add), which then gives the same bits as unfused operations."""

_forked = False


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run_serial() -> bool:
    """Whether this process must call the serial twins of the parallel kernels.

    True in a process forked from one that imported this package (a ``DataLoader`` worker on
    Linux, a ``multiprocessing`` child started by fork) and in a torch ``DataLoader`` worker
    started in any other way; False elsewhere. Torch is only looked at if it is imported.
    """
    if _forked:
        return True
    data = sys.modules.get("torch.utils.data")
    get_worker_info = getattr(data, "get_worker_info", None)
    return get_worker_info is not None and get_worker_info() is not None


def prefer_passive_openmp() -> bool:
    """Let OpenMP threads sleep, not spin, while they wait, unless the user chose a wait policy.

    Sets ``OMP_WAIT_POLICY=PASSIVE`` when it is unset and torch is not imported yet (the OpenMP
    runtime reads it once, when torch loads it); the commands that train call this first. With
    the default policy a waiting thread spins, and an OpenMP region finishes only when its last
    thread gets a core: where anything else wants the CPU (a loader worker, another program),
    torch's threads then lose most of their time to each other. Measured on 2 shared cores,
    ResNet-18 training steps at 64 x 64, batch 32, 2 threads against 1 in the same process:
    17 against 82 patches/s with the default policy, 118 against 84 with ``PASSIVE``; alone on
    the cores both policies reach about 150 (``docs/training.md``).

    Returns
    -------
    bool
        Whether ``PASSIVE`` is in effect (set now or before).
    """
    policy = os.environ.get("OMP_WAIT_POLICY")
    if policy is None and "torch" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = policy = "PASSIVE"
    return (policy or "").upper() == "PASSIVE"
