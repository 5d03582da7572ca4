"""The core works without torch, and ispad_core.nn says how to install the extra (no torch needed)."""

import subprocess
import sys

HIDE_TORCH = "import sys; sys.modules['torch'] = None\n"


def _run(code):
    return subprocess.run([sys.executable, "-c", HIDE_TORCH + code], capture_output=True, text=True)


def test_core_imports_and_runs_without_torch():
    out = _run(
        "import ispad_core, ispad_core.fractions\n"
        "sel = ispad_core.fractions.nested_fractions(172, rng=0)\n"
        "print([len(v) for v in sel.values()])\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[172, 86, 43, 21, 10]"


def test_nn_without_torch_gives_the_install_hint():
    out = _run(
        "try:\n"
        "    import ispad_core.nn\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ispad_core.nn needs PyTorch, which is an optional extra: pip install "ispad-core[torch]"'


def test_attribute_access_gives_the_hint_too():
    out = _run("import ispad_core\ntry:\n    ispad_core.nn\nexcept ImportError as exc:\n    print('hint' if 'ispad-core[torch]' in str(exc) else exc)\n")
    assert out.stdout.strip() == "hint", out.stderr
