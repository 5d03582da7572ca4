"""``python -m ispad_core``: the same as the ``ispad`` command."""

from ispad_core.cli import main

raise SystemExit(main())
