"""Judging a detector's output from files.

- :mod:`~ispad_core.evaluation.scores`: image scores (CSV) and anomaly maps against a test set,
  what ``ispad evaluate`` prints (:func:`read_scores`, :func:`read_maps`,
  :func:`evaluate_scores`, :func:`format_row`).
- :mod:`~ispad_core.evaluation.review`: a self-contained HTML page on which a person confirms or
  rejects the windows ``ispad inspect`` flagged (:func:`review_page`, :func:`read_inspection`),
  what ``ispad review`` writes.
"""

from ispad_core.evaluation.review import (
    DECISION_COLUMNS,
    FlaggedWindow,
    ReviewRun,
    read_inspection,
    review_page,
    write_review_page,
)
from ispad_core.evaluation.scores import (
    MAP_EXTENSIONS,
    ScoreTable,
    evaluate_scores,
    format_row,
    read_maps,
    read_scores,
)

__all__ = [
    "DECISION_COLUMNS",
    "MAP_EXTENSIONS",
    "FlaggedWindow",
    "ReviewRun",
    "ScoreTable",
    "evaluate_scores",
    "format_row",
    "read_inspection",
    "read_maps",
    "read_scores",
    "review_page",
    "write_review_page",
]
