"""Defaults of the training recipes that torch-free modules name too (the experiment's config,
the command line's help): kept here so that naming them does not import torch."""

from __future__ import annotations

__all__ = ["DEMO_CURRICULUM", "DEMO_STEPS", "FROM_SCRATCH_CURRICULUM"]

#: The contrast curriculum of a run from random initialisation on a stream drawn on the fly with a
#: set length (``ispad train --images``, ``ispad experiment`` at native contrast):
#: the synthetic defects start 6 times as strong, anneal to the preset's contrast over the first
#: three quarters of the steps, and the model is selected only from there on (docs/training.md has
#: the measurement: over six seeds above annealing over the first half, with and without real
#: defects). Text as :meth:`ispad_core.nn.ContrastCurriculum.parse` reads it.
FROM_SCRATCH_CURRICULUM = "6:0.75:native"

#: Training steps of ``ispad demo`` at native contrast (docs/training.md, "The demo").
DEMO_STEPS = 1000

#: The contrast curriculum of ``ispad demo`` at native contrast: its 1 000 steps are half the
#: length the from-scratch default was measured at, and annealing over three quarters of them
#: leaves 250 steps at native contrast; measured on the demo, that run missed both planted
#: defects where this one finds one (docs/training.md, "The demo").
DEMO_CURRICULUM = "6:0.5:native"
