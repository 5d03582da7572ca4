"""Root conftest: doctest collection of the package must not need the optional extras."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("torch") is None:
    # ispad_core.nn is the optional [torch] layer; without torch its doctests cannot run.
    collect_ignore_glob.append("ispad_core/nn/*")
