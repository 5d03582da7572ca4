"""The command line's own error type."""

from __future__ import annotations

from ispad_core._shared.errors import InputError

__all__ = ["CLIError"]


class CLIError(InputError):
    """A user error of the command line (an option missing or at odds with another): one line, exit status 1."""
