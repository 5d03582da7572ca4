"""The library's error types for bad input, which a caller (and the ``ispad`` command) can tell
apart from bugs by their type.

Every check of an argument, a file or a setting raises an :class:`InputError`: an
:class:`InputValueError` (also a ``ValueError``) for a wrong shape, range or value, an
:class:`InputTypeError` (also a ``TypeError``) for a wrong type or dtype, an
:class:`InvisibleDefectError` (also a ``RuntimeError``) when settings leave a defect invisible.
a :class:`SetupError` (also a ``RuntimeError``) when the setting the library runs in stops it.
Code that catches ``ValueError``, ``TypeError`` or ``RuntimeError`` keeps working; the ``ispad`` command reports an
``InputError`` as one line and shows the traceback of anything else.
"""

from __future__ import annotations

__all__ = ["InputError", "InputTypeError", "InputValueError", "InvisibleDefectError", "SetupError"]


class InputError(Exception):
    """Bad input given to the library: the caller's to fix, not a bug in the library."""


class InputValueError(InputError, ValueError):
    """An argument, file or setting has a wrong shape, range or value."""


class InputTypeError(InputError, TypeError):
    """An argument has a wrong type or dtype."""


class InvisibleDefectError(InputError, RuntimeError):
    """A defect stays under its visibility threshold whatever is tried: the settings cannot be met
    on these images (another preset, other images or a lower threshold can)."""


class SetupError(InputError, RuntimeError):
    """The setting the library runs in stops it, not the library: Dask workers with other versions,
    a file replaced under a writer by another process, an ONNX runtime that disagrees with torch."""


for _cls in (InputError, InputValueError, InputTypeError, InvisibleDefectError, SetupError):
    _cls.__module__ = "ispad_core"  # their public home: tracebacks say ispad_core.InputValueError
