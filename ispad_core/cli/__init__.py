"""The ``ispad`` command: a thin face over the library (:func:`main`, the console script)."""

from ispad_core.cli.app import (
    BUILTIN_KINDS,
    BUILTIN_SIDE,
    CLIError,
    build_parser,
    builtin_images,
    cmd_evaluate,
    cmd_gallery,
    cmd_info,
    cmd_merge,
    cmd_synth,
    evaluate_scores,
    format_row,
    main,
)

__all__ = ["CLIError", "build_parser", "builtin_images", "main"]
