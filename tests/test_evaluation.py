"""Scoring from files: the score CSV, the anomaly maps, the checks against a test set, the row."""

import csv

import numpy as np
import pytest

from ispad_core import metrics
from ispad_core.evaluation import evaluate_scores, format_row, read_maps, read_scores
from ispad_core.io import write_mvtec


def _csv(path, rows, header=("name", "score", "label")):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def dataset(tmp_path):
    n_good, n_bad = 12, 4
    images = np.zeros((n_good + n_bad, 16, 16), np.uint8)
    masks = np.zeros((n_good + n_bad, 16, 16), np.uint8)
    for i in range(n_good, n_good + n_bad):
        masks[i, 4:8, 4 + i - n_good : 9] = 1
    groups = ["good"] * n_good + ["area"] * n_bad
    root = write_mvtec(tmp_path / "data", images[:2], images, test_groups=groups, test_masks=masks)
    names = [f"good/{i:03d}.png" for i in range(n_good)] + [f"area/{i:03d}.png" for i in range(n_bad)]
    labels = np.array([0] * n_good + [1] * n_bad)
    return root, names, labels, masks


def test_read_scores_columns_in_any_case_and_order(tmp_path):
    f = _csv(tmp_path / "s.csv", [("1", " b.png ", "0.5", "9"), ("0", "a.png", "-2", "9")],
             header=(" Label", "NAME", "Score ", "extra"))
    t = read_scores(f)
    assert t.names == ("b.png", "a.png") and t.scores.tolist() == [0.5, -2.0] and t.labels.tolist() == [1, 0]
    assert t.labels.dtype == np.uint8 and t.scores.dtype == np.float64


@pytest.mark.parametrize(
    "rows, header, exc, message",
    [
        ([("a", "0.5", "2")], None, ValueError, "s.csv line 2: label '2' is not 0 or 1"),
        ([("a", "0.5", "1"), ("b", "x", "1")], None, ValueError, "line 3: score 'x' is not a number"),
        ([("a", "inf", "1")], None, ValueError, "score inf is not finite"),
        ([("a", "0.5", "1")], ("name", "value", "label"), ValueError, "needs the columns name, score, label; missing score"),
        ([("a", "0.5", "1"), ("a", "0.2", "0")], None, ValueError, "lists a more than once"),
        ([], None, ValueError, "has no rows"),
    ],
)
def test_read_scores_bad_files(tmp_path, rows, header, exc, message):
    f = _csv(tmp_path / "s.csv", rows, header or ("name", "score", "label"))
    with pytest.raises(exc, match=message):
        read_scores(f, name="--scores")
    with pytest.raises(FileNotFoundError, match="--scores: .*none.csv does not exist"):
        read_scores(tmp_path / "none.csv", name="--scores")


BIG = 2**53  # float64 holds every integer up to here, not 2**53 + 1


def _big_scores(tmp_path):
    """Integer scores just past 2**53, whose order float64 loses: (csv, labels, scores as Python ints)."""
    scores = [BIG, BIG + 2, BIG + 1, BIG + 1, BIG + 3, BIG]
    labels = [0, 0, 1, 1, 1, 0]
    names = [f"{i}.png" for i in range(len(scores))]
    return _csv(tmp_path / "big.csv", zip(names, scores, labels)), np.array(labels), scores


def test_integer_scores_are_read_exactly(tmp_path):
    f, _, scores = _big_scores(tmp_path)
    t = read_scores(f)
    assert t.scores.dtype == np.int64 and t.scores.tolist() == scores
    small = read_scores(_csv(tmp_path / "small.csv", [("a", "3", "0"), ("b", " -4 ", "1"), ("c", "+7", "1")]))
    assert small.scores.dtype == np.int64 and small.scores.tolist() == [3, -4, 7]
    top = read_scores(_csv(tmp_path / "u.csv", [("a", str(2**64 - 1), "1"), ("b", str(2**63), "0"), ("c", "0", "0")]))
    assert top.scores.dtype == np.uint64 and top.scores.tolist() == [2**64 - 1, 2**63, 0]
    mixed = read_scores(_csv(tmp_path / "m.csv", [("a", "3", "0"), ("b", "0.5", "1")]))
    assert mixed.scores.dtype == np.float64 and mixed.scores.tolist() == [3.0, 0.5]


def test_evaluate_keeps_integer_scores_beyond_2_53_exact(tmp_path):
    f, labels, scores = _big_scores(tmp_path)
    exact = metrics.classification_report(labels, np.array(scores, np.int64), threshold=float(BIG + 2))
    rounded = metrics.roc_auc(labels, np.array(scores, np.float64))
    assert exact.auroc != rounded  # float64 would change the answer: the test can see the difference
    result = evaluate_scores(f, threshold=float(BIG + 2))
    assert result["image"] == exact.to_dict()
    assert result["image"]["auroc"] == metrics.roc_auc(labels, np.array(scores, np.int64)) == 7 / 9
    assert (result["image"]["tp"], result["image"]["fp"]) == (1, 1)  # BIG + 2 and BIG + 3, not BIG + 1 rounded up


def test_the_command_line_gives_the_exact_auroc(tmp_path, capsys):
    import json

    from ispad_core.cli import main

    f, labels, scores = _big_scores(tmp_path)
    assert main(["evaluate", "--scores", str(f), "--threshold", str(float(BIG)), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["image"]["auroc"] == metrics.roc_auc(labels, np.array(scores, np.int64)) == 7 / 9


def test_integer_scores_that_cannot_stay_exact_are_refused_by_line(tmp_path):
    f, _, _ = _big_scores(tmp_path)
    with pytest.raises(ValueError, match=r"--scores: .*big\.csv: y_score: integer scores beyond 2\*\*53 .*"
                                         r"\(or pass a threshold\)"):
        evaluate_scores(f, names={"scores": "--scores"})  # no exact float64 F1-optimal threshold
    mixed = _csv(tmp_path / "m.csv", [("a", "0.5", "0"), ("b", str(BIG + 1), "1")])
    with pytest.raises(ValueError, match=r"m\.csv line 3: score 9007199254740993 is an integer beyond 2\*\*53, which "
                                         r"float64 cannot hold exactly, and other scores are fractions \(line 2: 0\.5\)"):
        read_scores(mixed)
    huge = _csv(tmp_path / "h.csv", [("a", "1", "0"), ("b", str(2**64), "1")])
    with pytest.raises(ValueError, match=r"h\.csv line 3: score 18446744073709551616 does not fit in 64 bits"):
        read_scores(huge)
    low = _csv(tmp_path / "l.csv", [("a", str(-(2**63) - 1), "0"), ("b", str(2**63), "1")])
    with pytest.raises(ValueError, match=r"l\.csv line 2: score -9223372036854775809 does not fit in 64 bits"):
        read_scores(low)


def test_read_maps_finds_each_format_and_checks_shapes(tmp_path):
    from ispad_core.io import write_png

    root = tmp_path / "maps" / "test"
    (root / "area").mkdir(parents=True)
    np.save(root / "area" / "000.npy", np.ones((1, 4, 5)))
    write_png(root / "area" / "001.png", np.full((4, 5), 7, np.uint8))
    maps = read_maps(tmp_path / "maps", ["area/000.png", "area/001.png"], [(4, 5), (4, 5)])
    assert maps[0].shape == (4, 5) and float(maps[0].sum()) == 20 and int(maps[1][0, 0]) == 7
    with pytest.raises(ValueError, match="001.png is \\(4, 5\\) but the ground truth of area/001.png is \\(5, 5\\)"):
        read_maps(tmp_path / "maps", ["area/001.png"], [(5, 5)])
    with pytest.raises(FileNotFoundError, match="no anomaly map for area/002.png"):
        read_maps(tmp_path / "maps", ["area/002.png"], [(4, 5)])
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        read_maps(tmp_path / "nope", ["area/000.png"], [(4, 5)])


def test_evaluate_scores_is_the_metrics_on_the_file(tmp_path, dataset):
    root, names, labels, masks = dataset
    rng = np.random.default_rng(0)
    scores = (rng.random(labels.size) + labels * 0.8).round(4)
    f = _csv(tmp_path / "s.csv", zip(names, scores, labels))
    result = evaluate_scores(f, dataset=root)
    expected = metrics.classification_report(labels, scores).to_dict()
    assert result["image"] == expected and result["n"] == 16 and result["n_defective"] == 4
    assert result["au_pro"] is None and result["fpr_limit"] == 0.3
    maps_dir = tmp_path / "maps"
    amaps = [m * 0.9 + rng.random(m.shape) * 0.2 for m in masks]
    for name, amap in zip(names, amaps):
        (maps_dir / name).parent.mkdir(parents=True, exist_ok=True)
        np.save((maps_dir / name).with_suffix(".npy"), amap)
    result = evaluate_scores(f, maps=maps_dir, dataset=root, fpr_limit=0.2)
    assert result["au_pro"] == pytest.approx(metrics.au_pro(amaps, list(masks), fpr_limit=0.2), abs=1e-12)
    assert result["pixel_auroc"] == pytest.approx(metrics.pixel_roc_auc(amaps, list(masks)), abs=1e-12)
    row = format_row(result)
    assert "AU-PRO@0.2 (%)" in row.splitlines()[0]
    assert row.splitlines()[1].split()[-2] == f"{100 * result['au_pro']:.1f}"


def test_evaluate_scores_checks_the_scores_against_the_test_set(tmp_path, dataset):
    root, names, labels, _ = dataset
    half = _csv(tmp_path / "half.csv", [(n, 0.5, lab) for n, lab in list(zip(names, labels))[::2]])
    with pytest.raises(ValueError, match="8 of the 16 test images of .* have no score, e.g. good/001.png"):
        evaluate_scores(half, dataset=root)
    wrong = _csv(tmp_path / "wrong.csv", [(n, 0.5, 1 - lab) if n == "good/003.png" else (n, 0.5, lab)
                                          for n, lab in zip(names, labels)])
    with pytest.raises(ValueError, match="the labels of good/003.png disagree"):
        evaluate_scores(wrong, dataset=root)
    stray = _csv(tmp_path / "stray.csv", [("good/999.png", 0.5, 0), *zip(names, [0.1] * 16, labels)])
    with pytest.raises(ValueError, match="good/999.png are not test images"):
        evaluate_scores(stray, dataset=root)
    with pytest.raises(ValueError, match="--maps needs --dataset"):
        evaluate_scores(half, maps=tmp_path, names={"maps": "--maps", "dataset": "--dataset"})
    with pytest.raises(ValueError, match="fpr_limit"):
        evaluate_scores(half, fpr_limit=0.0)


def test_format_row_is_the_papers_columns():
    result = {"image": {"mcc": 0.5, "recall_percent": 75.0, "fpr_percent": 1.25, "precision_percent": 90.0,
                        "auroc_percent": 97.25, "tn": 10, "tp": 3, "fn": 1, "fp": 2, "threshold": 0.5},
              "au_pro": None}
    header, values = format_row(result).splitlines()
    assert header.split("  ")[0].strip() == "MCC" and "AU-PRO" not in header
    assert values.split() == ["0.50", "75.0", "1.2", "10", "3", "1", "2", "90.0", "97.2", "0.5"]
