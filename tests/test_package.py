"""Package-level contract: version, lazy submodules, and a core that never imports torch."""

import subprocess
import sys

import ispad_core


def test_version_is_a_string():
    assert isinstance(ispad_core.__version__, str) and ispad_core.__version__.count(".") >= 2


def test_unknown_attribute_is_an_attribute_error():
    try:
        ispad_core.does_not_exist
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:  # pragma: no cover - the assertion documents the failure
        raise AssertionError("expected AttributeError")


def test_import_is_light():
    code = "import sys, ispad_core; print('numba' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_core_submodules_never_import_torch():
    """Every submodule but nn and the demo (a torch workflow) stays torch-free, and so does the CLI's
    parser, which lists the torch commands."""
    core = sorted(ispad_core._SUBMODULES - {"nn", "demo"})
    code = (
        "import importlib, sys\n"
        f"for m in {core!r}:\n    importlib.import_module('ispad_core.' + m)\n"
        "import ispad_core.cli as c; c.build_parser()\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"], out.stderr
