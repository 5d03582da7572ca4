"""The compiled kernels are cached on disk: a second process loads them instead of compiling."""

import os
import subprocess
import sys

import numpy as np

from ispad_core.samples import screen_print
from ispad_core.synth import random_walk_skeleton, synthesize, synthesize_batch

CODE = """
import numpy as np
from ispad_core.samples import screen_print
from ispad_core.synth import random_walk_skeleton, synthesize, synthesize_batch
synthesize_batch(np.zeros((2, 32, 32), np.uint8), "mixed", rng=0, warn=False)
synthesize(np.zeros((32, 32), np.uint8), "mixed", rng=0, warn=False)
random_walk_skeleton((32, 32), "mixed", rng=0)
screen_print((8, 8), rng=0)
"""


def test_second_process_loads_the_kernels_from_the_cache():
    # This process compiles (or loads) and thereby writes the cache ...
    synthesize_batch(np.zeros((2, 32, 32), np.uint8), "mixed", rng=0, warn=False)
    synthesize(np.zeros((32, 32), np.uint8), "mixed", rng=0, warn=False)
    random_walk_skeleton((32, 32), "mixed", rng=0)
    screen_print((8, 8), rng=0)
    # ... so a fresh one must find every entry point there.
    env = dict(os.environ, NUMBA_DEBUG_CACHE="1")
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env)
    log = out.stdout + out.stderr
    for kernel in ("synth_batch", "synth_serial", "skeleton", "screen_print_kernel"):
        assert f"_kernels.{kernel}-" in log and "data loaded from" in log, kernel
        loaded = [line for line in log.splitlines() if f"_kernels.{kernel}-" in line and "data loaded" in line]
        assert loaded, f"{kernel} was compiled again instead of loaded:\n{log[-2000:]}"
        saved = [line for line in log.splitlines() if f"_kernels.{kernel}-" in line and "data saved" in line]
        assert not saved, kernel
