"""Fixtures and helpers the test modules share.

- :func:`run_ispad` runs the ``ispad`` command in this process (``ispad_core.cli.main``), with its
  output captured; :func:`run_ispad_process` runs the installed console script in a subprocess,
  for the tests where the process itself is the point (a real Ctrl-C, a closed pipe, the entry
  point);
- ``images``: two small screen prints of different designs and sizes, the stream tests' input;
- the ``slow`` marker: ``pytest -m "not slow"`` leaves out the tests that train for real or start
  clusters of processes (a few minutes of the suite).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ISPAD = shutil.which("ispad", path=os.path.dirname(sys.executable)) or shutil.which("ispad")


@dataclass(frozen=True)
class Ran:
    """What a run of the command gave: its exit status and its output."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _in_folder(folder: str | os.PathLike | None):
    before = os.getcwd()
    if folder is not None:
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run_ispad(*args, cwd: str | os.PathLike | None = None, expect: int = 0) -> Ran:
    """``ispad ARGS`` in this process; checks its exit status is ``expect``."""
    from ispad_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _in_folder(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: --help, --version and usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    ran = Ran(code, out.getvalue(), err.getvalue())
    assert code == expect, f"rc {code}\nstdout:\n{ran.stdout}\nstderr:\n{ran.stderr}"
    return ran


def run_ispad_process(*args, cwd=None, expect: int = 0, env: dict | None = None, timeout: float = 900) -> Ran:
    """``ispad ARGS`` as a user runs it: the installed console script in a subprocess."""
    assert ISPAD is not None, "the ispad console script is not installed: python -m pip install -e ."
    proc = subprocess.run([ISPAD, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    ran = Ran(proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == expect, f"rc {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return ran


@pytest.fixture(scope="module")
def images():
    """Two fault-free screen prints (dots 150 x 170, lines 130 x 130): a stream's input."""
    from ispad_core.samples import screen_print

    return [screen_print((150, 170), rng=1, kind="dots"), screen_print((130, 130), rng=2, kind="lines")]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    """A folder of two small scans (PNG), as ``--images`` reads them."""
    import imageio.v3 as iio

    from ispad_core.samples import screen_print

    d = tmp_path_factory.mktemp("scans")
    iio.imwrite(d / "a.png", screen_print((100, 120), rng=0, kind="dots"))
    iio.imwrite(d / "b.png", screen_print((90, 90), rng=1, kind="mesh"))
    return d
