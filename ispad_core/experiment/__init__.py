"""The paper's grid of training runs (strategy x group x fraction x backbone x seed) behind
``ispad experiment``: the config (:mod:`ispad_core.experiment.config`), the runs
(:mod:`ispad_core.experiment.runner`) and their tables and figure (:mod:`ispad_core.experiment.report`)."""

from ispad_core.experiment.config import STRATEGIES, ConfigError, ExperimentConfig, RunSpec, load_config
from ispad_core.experiment.runner import (
    ExperimentResult,
    TrainOutput,
    TrainRequest,
    run_experiment,
    score_test_set,
    select_real,
    train_step,
)

__all__ = [
    "STRATEGIES",
    "ConfigError",
    "ExperimentConfig",
    "ExperimentResult",
    "RunSpec",
    "TrainOutput",
    "TrainRequest",
    "load_config",
    "run_experiment",
    "score_test_set",
    "select_real",
    "train_step",
]
