"""The paper's grid of training runs (strategy x group x fraction x backbone x seed) behind
``ispad experiment``: see :mod:`ispad_core.experiment.runner`."""

from ispad_core.experiment.runner import (
    STRATEGIES,
    ConfigError,
    ExperimentConfig,
    ExperimentResult,
    RunSpec,
    TrainOutput,
    TrainRequest,
    load_config,
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
