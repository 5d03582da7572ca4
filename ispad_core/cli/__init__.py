"""The ``ispad`` command: a thin face over the library.

:func:`main` is the console script; :mod:`~ispad_core.cli.parser` builds the parser from one
module per command (:mod:`~ispad_core.cli.synth`, :mod:`~ispad_core.cli.train`, ...), each with
``add_parser(sub)`` and ``run(args)``; :mod:`~ispad_core.cli.argtypes` parses option values and
:class:`CLIError` is the command line's own error. :mod:`~ispad_core.cli.app` decides the exit
status from the type of an error.
"""

from ispad_core.cli.app import main
from ispad_core.cli.errors import CLIError
from ispad_core.cli.evaluate import evaluate_scores
from ispad_core.cli.parser import build_parser
from ispad_core.evaluation import format_row

__all__ = ["CLIError", "build_parser", "main"]
