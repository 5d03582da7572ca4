"""Root conftest: doctest collection of the package must not need the optional extras."""

import importlib.util

from ispad_core._shared.config import prefer_passive_openmp

# As the training commands do, before torch loads: with spinning OpenMP waits, the tests that train
# with a loader worker beside torch's threads ran many times slower on 2 cores.
prefer_passive_openmp()

collect_ignore_glob = []
if importlib.util.find_spec("torch") is None:
    # ispad_core.nn is the optional [torch] layer; without torch its doctests cannot run.
    collect_ignore_glob.append("ispad_core/nn/*")
if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
    # the ONNX export is the optional [deploy] extra
    collect_ignore_glob.append("ispad_core/nn/export.py")
if importlib.util.find_spec("distributed") is None:
    # the Dask path is the optional [dask] extra
    collect_ignore_glob.append("ispad_core/stream/dask.py")
