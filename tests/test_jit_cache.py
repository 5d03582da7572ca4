"""Telling whether Numba will compile a kernel on its first call (the 'compiling kernels' notice)."""

import os
import subprocess
import sys
import textwrap

import pytest

from ispad_core.stream.generation import stream_kernels_uncached

SOURCE = textwrap.dedent(
    """
    import sys
    from numba import njit
    from ispad_core._shared.jit_cache import uncached

    @njit(cache=True)
    def twice(x):
        return 2 * x

    before = uncached([twice])
    twice(3)
    print(before, uncached([twice]))
    """
)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no JIT, nothing to cache")
def test_uncached_reads_numbas_cache_index(tmp_path):
    module = tmp_path / "kernel_mod.py"
    module.write_text(SOURCE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    def run():
        out = subprocess.run([sys.executable, "-c", "import kernel_mod"], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert run() == "['twice'] []"  # empty cache: to compile; then compiled in the process
    assert run() == "[] []"  # the next process finds it in the cache
    module.write_text(SOURCE.replace("2 * x", "3 * x"))  # an edited source makes the cache stale
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert run() == "['twice'] []"


def test_the_streams_kernels_are_listed_or_unknown():
    names = stream_kernels_uncached()
    assert names is None or set(names) <= {"synth_batch", "augment_batch", "mask_contrast"}
