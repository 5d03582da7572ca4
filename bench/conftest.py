"""Fixtures the benchmark suites share: a line printed past pytest's capture, the built-in sample
image, one Numba thread, and whether benchmarks run (``--benchmark-disable`` gives each suite its
small workload, so that the benchmark code itself cannot rot)."""

import numba
import pytest

from ispad_core.samples import builtin_images


@pytest.fixture
def say(capsys, request):
    """``say(line)`` prints ``[bench <suite>] line`` even while pytest captures output."""
    suite = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_bench_")

    def _say(line: str) -> None:
        with capsys.disabled():
            print(f"\n[bench {suite}] {line}")

    return _say


@pytest.fixture(scope="module")
def sample():
    """The images of the built-in sample (four 640 x 640 screen prints)."""
    return builtin_images(0)[0]


@pytest.fixture(scope="module")
def benchmarks_disabled(request) -> bool:
    """Whether the run has ``--benchmark-disable`` (suites then use their small workloads)."""
    return bool(request.config.getoption("benchmark_disable"))


@pytest.fixture(scope="module")
def one_numba_thread():
    """Numba on one thread for the module (the comparisons are per core), restored afterwards."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)
