"""The background warm-up: one thread per process that compiles or loads the preprocessing's kernel."""

import os

import pytest

from ispad_core._shared import warmup
from ispad_core._shared.kernels import gaussian_taps


def test_warm_up_runs_once_and_loads_the_kernel():
    thread = warmup.start_warm_up()
    assert warmup.start_warm_up() is thread  # a second call starts nothing new
    thread.join(timeout=120)
    assert not thread.is_alive()
    if os.environ.get("NUMBA_DISABLE_JIT") != "1":
        assert gaussian_taps.signatures  # compiled (or loaded from the cache) in this process


def test_the_command_line_starts_it(monkeypatch):
    """``ispad inspect`` starts the warm-up (before it imports the inference, and with it torch)."""
    pytest.importorskip("torch")
    from ispad_core.cli import inspect as cli_inspect

    started = []
    monkeypatch.setattr(warmup, "start_warm_up", lambda: started.append(True))

    class Stop(Exception):
        pass

    import ispad_core.nn.inference as inference

    monkeypatch.setattr(inference, "inspect_files", lambda *a, **k: (_ for _ in ()).throw(Stop()))
    import argparse

    parser = argparse.ArgumentParser()
    cli_inspect.add_parser(parser.add_subparsers())
    args = parser.parse_args(["inspect", "scan.png", "--model", "model.pt", "--out", "out"])
    with pytest.raises(Stop):
        cli_inspect.run(args)
    assert started == [True]
