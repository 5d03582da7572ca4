"""Defaults of the training recipes that torch-free modules name too (the experiment's config,
the command line's help): kept here so that naming them does not import torch."""

from __future__ import annotations

__all__ = ["DEMO_STEPS", "FROM_SCRATCH_CURRICULUM"]

#: The contrast curriculum of a run from random initialisation on a stream drawn on the fly with a
#: set length (``ispad train --images``, ``ispad experiment`` at native contrast, ``ispad demo``):
#: the synthetic defects start 6 times as strong, anneal to the preset's contrast over the first
#: half of the steps, and the model is selected only from there on (docs/training.md has the
#: measurement). Text as :meth:`ispad_core.nn.ContrastCurriculum.parse` reads it.
FROM_SCRATCH_CURRICULUM = "6:0.5:native"

#: Training steps of ``ispad demo`` at native contrast (docs/training.md, "The demo").
DEMO_STEPS = 1000
