"""The ``ispad`` command: run in this process (``ispad_core.cli.main``), and as the installed console
script in a subprocess where the process itself is the point (a real Ctrl-C, a closed pipe, the
entry point)."""

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pytest

from ispad_core import __version__
from ispad_core.io import open_stream, part_path, write_mvtec
from ispad_core.samples import screen_print
from ispad_core.synth import PRESETS, DefectParams, params_from_dict

from tests.conftest import ISPAD, run_ispad_process
from tests.conftest import run_ispad as ispad

SMALL = ["--size", "64", "--batch-size", "4", "--quiet"]


def test_help_and_version():
    assert run_ispad_process("--version").stdout.strip() == f"ispad {__version__}"  # the console script itself
    assert ispad("--version").stdout.strip() == f"ispad {__version__}"
    top = ispad("--help").stdout
    for command in ("synth", "merge", "gallery", "evaluate", "info"):
        assert command in top
        text = ispad(command, "--help").stdout
        assert text.startswith(f"usage: ispad {command}")
    assert "--shard K/N" in ispad("synth", "--help").stdout
    assert "name,score,label" in ispad("evaluate", "--help").stdout.replace("\n", " ").replace("  ", " ")


def test_synth_on_the_builtin_sample(tmp_path):
    proc = ispad("synth", "--out", tmp_path / "a.h5", "--n", 6, "--seed", 3, "--size", 64, "--batch-size", 4)
    assert "wrote 6 patches" in proc.stdout and "3 with synthetic defects" in proc.stdout
    assert "patches/s" in proc.stdout and "synthesis attempts per defect" in proc.stdout
    assert "100%" in proc.stderr and "patch/s" in proc.stderr  # the progress bar: rate and ETA
    with open_stream(tmp_path / "a.h5") as s:
        patches, masks, labels = s[:]
        assert len(s) == 6 and int(labels.sum()) == 3 and s.attrs["seed"] == 3
        assert s.attrs["sources"][0]["name"].startswith("builtin:screen_print")
        np.testing.assert_array_equal(masks.reshape(6, -1).any(axis=1), labels.astype(bool))
    ispad("synth", "--out", tmp_path / "b.h5", "--n", 6, "--seed", 3, *SMALL)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    info = ispad("info", tmp_path / "a.h5").stdout
    assert "6 patches of 64x64, 3 defective" in info and "seed: 3" in info


def test_synth_on_a_folder_of_images(tmp_path, image_dir):
    ispad("synth", "--out", tmp_path / "s.h5", "--images", image_dir, "--n", 5, "--seed", 0, "--preset", "dot-dark", *SMALL)
    with open_stream(tmp_path / "s.h5") as s:
        assert [src["name"] for src in s.attrs["sources"]] == ["a.png", "b.png"]
        assert params_from_dict(s.attrs["preset"]) == PRESETS["dot-dark"] != PRESETS["dot-bright"]
        assert s.attrs["preset_name"] == "dot-dark" and int(s.labels.sum()) == 2


def test_synth_bad_input_leaves_nothing_behind(tmp_path, image_dir):
    out = tmp_path / "s.h5"
    err = ispad("synth", "--out", out, "--images", tmp_path / "nope", *SMALL, expect=1).stderr
    assert "ispad synth: error: --images:" in err and str(tmp_path / "nope") in err and "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    err = ispad("synth", "--out", out, "--images", empty, *SMALL, expect=1).stderr
    assert str(empty) in err and "it is empty" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"this is not a PNG")
    err = ispad("synth", "--out", out, "--images", bad, *SMALL, expect=1).stderr
    assert "cannot read" in err and "broken.png" in err
    small = tmp_path / "small"
    small.mkdir()
    iio.imwrite(small / "tiny.png", np.zeros((40, 300), np.uint8))
    err = ispad("synth", "--out", out, "--images", small, *SMALL, expect=1).stderr
    assert str(small / "tiny.png") in err and "is 40 x 300 pixels, smaller than the minimum 64 x 64" in err
    err = ispad("synth", "--out", out, "--n", 4, "--preset", "nope", *SMALL, expect=1).stderr
    assert "preset: expected one of" in err
    assert not out.exists() and not list(tmp_path.glob("*.part*"))
    out.write_bytes(b"precious")
    err = ispad("synth", "--out", out, "--n", 4, *SMALL, expect=1).stderr
    assert "exists; pass --overwrite" in err and out.read_bytes() == b"precious"
    err = ispad("synth", "--out", out, "--shard", "3/3", *SMALL, expect=2).stderr
    assert "expected 0 <= K < N in K/N" in err
    err = ispad("synth", "--out", out, "--defect-fraction", "1.5", *SMALL, expect=2).stderr
    assert "--defect-fraction: expected a number in [0, 1], got '1.5'" in err


def test_the_printed_reproduce_command_reproduces_the_file(tmp_path, image_dir):
    # The summary's "reproduce with:" line must carry every option that decides the bytes.
    first = tmp_path / "a.h5"
    proc = ispad("synth", "--out", first, "--images", image_dir, "--n", 5, "--seed", 2, "--preset", "dot-dark",
                 "--augment", "none", "--compression", "zlib", "--defect-fraction", 0.2, *SMALL)
    with open_stream(first) as s:
        assert int(s.labels.sum()) == 1 and s.attrs["defect_fraction"] == 0.2
    line = next(x for x in proc.stdout.splitlines() if x.startswith("reproduce with: ispad synth "))
    argv = shlex.split(line[len("reproduce with: ispad synth "):])
    assert argv[argv.index("--out") + 1] == str(first)
    argv[argv.index("--out") + 1] = str(tmp_path / "b.h5")
    ispad("synth", *argv, "--quiet")
    assert (tmp_path / "b.h5").read_bytes() == first.read_bytes()


def test_shards_merge_to_the_whole(tmp_path):
    common = ["--n", 9, "--seed", 5, *SMALL]
    ispad("synth", "--out", tmp_path / "whole.h5", *common)
    for k in range(3):
        ispad("synth", "--out", tmp_path / f"part-{k}.h5", "--shard", f"{k}/3", *common)
    proc = ispad("merge", *(tmp_path / f"part-{k}.h5" for k in (2, 0, 1)), "--out", tmp_path / "copy.h5", "--copy")
    assert "merged 3 parts" in proc.stdout and "9 patches" in proc.stdout
    assert (tmp_path / "copy.h5").read_bytes() == (tmp_path / "whole.h5").read_bytes()
    ispad("merge", *(tmp_path / f"part-{k}.h5" for k in range(3)), "--out", tmp_path / "virtual.h5")
    with open_stream(tmp_path / "virtual.h5") as v, open_stream(tmp_path / "whole.h5") as w:
        for a, b in zip(v[:], w[:]):
            np.testing.assert_array_equal(a, b)
    err = ispad("merge", tmp_path / "part-0.h5", tmp_path / "part-2.h5", "--out", tmp_path / "gap.h5", expect=1).stderr
    assert "are missing between" in err and not (tmp_path / "gap.h5").exists()
    tail = [tmp_path / "part-1.h5", tmp_path / "part-2.h5", "--out", tmp_path / "tail.h5"]
    err = ispad("merge", *tail, expect=1).stderr
    assert "items [0, 3) are missing" in err and "--partial" in err and not (tmp_path / "tail.h5").exists()
    assert "6 patches" in ispad("merge", *tail, "--partial").stdout


def test_shard_without_seed_is_refused(tmp_path):
    # Each machine would draw its own fresh seed: the parts would belong to different streams.
    out = tmp_path / "part-0.h5"
    err = ispad("synth", "--out", out, "--shard", "0/2", "--n", 4, *SMALL, expect=1).stderr
    assert "--shard needs --seed" in err
    assert not out.exists() and not list(tmp_path.glob("*.part*"))


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name == "nt", reason="needs POSIX signals")
def test_interrupted_synth_resumes_to_the_same_bytes(tmp_path):
    common = ["--n", 40, "--seed", 8, "--size", 64, "--batch-size", 8]
    ispad("synth", "--out", tmp_path / "whole.h5", *common, "--quiet")
    out = tmp_path / "s.h5"
    assert ISPAD is not None, "the ispad console script is not installed: python -m pip install -e ."
    # The command sends itself SIGINT (a real signal, through its real handler) right after the
    # checkpoint at 16 items, as a user's Ctrl-C at that moment would: no race with the clock.
    env = {**os.environ, "ISPAD_TEST_SIGINT_AT": "16"}
    proc = subprocess.run([ISPAD, "synth", "--out", str(out), *map(str, common)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 130, proc.stderr
    assert "run the same command again to resume" in proc.stderr
    assert not out.exists() and part_path(out).exists()
    with h5py.File(part_path(out), "r") as f:
        assert int(f.attrs["n_done"]) == 16  # the batch in flight was finished and checkpointed, no more
    # the same command without --seed: the seed of the unfinished write is taken over
    proc = ispad("synth", "--out", out, "--n", 40, "--size", 64, "--batch-size", 8, "--quiet")
    assert "(16 resumed)" in proc.stdout
    assert out.read_bytes() == (tmp_path / "whole.h5").read_bytes()


def test_gallery(tmp_path, image_dir):
    ispad("gallery", "--out", tmp_path / "g.png", "--n", 2, "--size", 48)
    sheet = iio.imread(tmp_path / "g.png")
    assert sheet.ndim == 3 and sheet.shape[2] == 3
    ispad("gallery", "--out", tmp_path / "h.png", "--n", 2, "--size", 48, "--images", image_dir, "--preset", "dot-dark")
    err = ispad("gallery", "--out", tmp_path / "g.png", expect=1).stderr
    assert "exists; pass --overwrite" in err


def _scores(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "score", "label"])
        w.writerows(rows)


def test_evaluate_scores_and_maps(tmp_path):
    rng = np.random.default_rng(0)
    n_good, n_bad = 12, 4
    images = np.zeros((n_good + n_bad, 16, 16), np.uint8)
    masks = np.zeros((n_good + n_bad, 16, 16), np.uint8)
    for i in range(n_good, n_good + n_bad):
        masks[i, 4:8, 4 + i - n_good : 9] = 1
    groups = ["good"] * n_good + ["area"] * n_bad
    root = write_mvtec(tmp_path / "data", images[:2], images, test_groups=groups, test_masks=masks)
    names = [f"good/{i:03d}.png" for i in range(n_good)] + [f"area/{i:03d}.png" for i in range(n_bad)]
    labels = [0] * n_good + [1] * n_bad
    scores = rng.random(n_good + n_bad) + np.array(labels) * 0.8
    _scores(tmp_path / "s.csv", zip(names, scores.round(4), labels))
    proc = ispad("evaluate", "--scores", tmp_path / "s.csv")
    table, _, js = proc.stdout.partition("\n\n")
    assert table.splitlines()[0].split()[:3] == ["MCC", "Recall", "(%)"]
    result = json.loads(js)
    assert result["n"] == 16 and result["n_defective"] == 4 and result["au_pro"] is None
    assert set(result["image"]) >= {"mcc", "recall", "fpr", "tn", "tp", "fn", "fp", "auroc", "threshold"}
    maps = tmp_path / "maps"
    for name, mask in zip(names, masks):
        (maps / name).parent.mkdir(parents=True, exist_ok=True)
        np.save((maps / name).with_suffix(".npy"), mask * 0.9 + rng.random(mask.shape) * 0.2)
    proc = ispad("evaluate", "--scores", tmp_path / "s.csv", "--maps", maps, "--dataset", root,
                 "--format", "json", "--json", tmp_path / "r.json")
    result = json.loads(proc.stdout)
    assert 0.5 < result["au_pro"] <= 1 and 0.5 < result["pixel_auroc"] <= 1
    assert json.loads((tmp_path / "r.json").read_text()) == result
    table = ispad("evaluate", "--scores", tmp_path / "s.csv", "--maps", maps, "--dataset", root, "--format", "table").stdout
    assert "AU-PRO@0.3 (%)" in table


@pytest.mark.parametrize(
    "rows, header, message",
    [
        ([("a", "0.5", "2")], ["name", "score", "label"], "label '2' is not 0 or 1"),
        ([("a", "x", "1")], ["name", "score", "label"], "score 'x' is not a number"),
        ([("a", "0.5", "1")], ["name", "value", "label"], "needs the columns name, score, label; missing score"),
        ([("a", "0.5", "1"), ("a", "0.2", "0")], ["name", "score", "label"], "lists a more than once"),
        ([("a", "0.5", "1")], ["name", "score", "label"], "both"),  # one class only: the metrics refuse
    ],
)
def test_evaluate_bad_csv(tmp_path, rows, header, message):
    with open(tmp_path / "s.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    err = ispad("evaluate", "--scores", tmp_path / "s.csv", expect=1).stderr
    assert err.startswith("ispad evaluate: error:") and message in err


def test_evaluate_refuses_an_existing_json_before_scoring(tmp_path):
    _scores(tmp_path / "s.csv", [("good/000.png", 0.1, 0), ("area/000.png", 0.9, 1)])
    (tmp_path / "r.json").write_text("mine")
    proc = ispad("evaluate", "--scores", tmp_path / "s.csv", "--json", tmp_path / "r.json", expect=1)
    assert "--json:" in proc.stderr and "exists; pass --overwrite" in proc.stderr
    assert proc.stdout == "" and (tmp_path / "r.json").read_text() == "mine"


@pytest.mark.parametrize("value", ["0", "1.5", "nan", "x"])
def test_fraction_options_are_checked_and_named(tmp_path, value):
    # --fpr-limit was accepted silently (and echoed in the JSON) unless --maps was given.
    _scores(tmp_path / "s.csv", [("good/000.png", 0.1, 0), ("area/000.png", 0.9, 1)])
    err = ispad("evaluate", "--scores", tmp_path / "s.csv", "--fpr-limit", value, expect=2).stderr
    assert "argument --fpr-limit:" in err and "(0, 1]" in err
    err = ispad("synth", "--out", tmp_path / "s.h5", "--min-roi-fraction", value, *SMALL, expect=2).stderr
    assert "argument --min-roi-fraction:" in err and "(0, 1]" in err
    assert not list(tmp_path.glob("*.h5*"))


def test_evaluate_maps_need_a_dataset(tmp_path):
    _scores(tmp_path / "s.csv", [("good/000.png", 0.1, 0), ("area/000.png", 0.9, 1)])
    err = ispad("evaluate", "--scores", tmp_path / "s.csv", "--maps", tmp_path, expect=1).stderr
    assert "--maps needs --dataset" in err
    assert "does not exist" in ispad("evaluate", "--scores", tmp_path / "none.csv", expect=1).stderr


def test_python_dash_m_runs_the_same_command():
    proc = subprocess.run([sys.executable, "-m", "ispad_core", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"ispad {__version__}"


def test_paths_in_messages_are_the_users(tmp_path):
    # relative --out from another working directory: the error names it as given
    (tmp_path / "x.h5").write_bytes(b"x")
    err = ispad("synth", "--out", "x.h5", *SMALL, cwd=tmp_path, expect=1).stderr
    assert "--out: x.h5 exists" in err
    assert Path(tmp_path / "x.h5").read_bytes() == b"x"


def test_synth_with_rois(tmp_path, image_dir):
    rois = tmp_path / "rois"
    rois.mkdir()
    a = np.zeros((100, 120), np.uint8)
    a[10:90, 30:110] = 255
    iio.imwrite(rois / "a.png", a)
    iio.imwrite(rois / "b.png", np.full((90, 90), 255, np.uint8))
    out = tmp_path / "s.h5"
    ispad("synth", "--out", out, "--images", image_dir, "--rois", rois, "--n", 6, "--seed", 1, "--augment", "none", *SMALL)
    with open_stream(out) as s:
        for (r, c), src in zip(s.field("origins"), s.field("sources")):
            if src == 0:
                assert a[r : r + 64, c : c + 64].all()
        assert [roi["name"] for roi in s.attrs["rois"]] == ["a.png", "b.png"]
    iio.imwrite(rois / "c.png", a)
    err = ispad("synth", "--out", tmp_path / "t.h5", "--images", image_dir, "--rois", rois, *SMALL, expect=1).stderr
    assert "--rois: c in" in err and "match no image" in err
    (rois / "c.png").unlink()
    (rois / "b.png").unlink()
    err = ispad("synth", "--out", tmp_path / "t.h5", "--images", image_dir, "--rois", rois, *SMALL, expect=1).stderr
    assert "no ROI for image b" in err


def test_a_closed_pipe_ends_quietly(tmp_path):
    # `ispad info FILE | head -1`: the reader leaves early; no traceback, no "error: Broken pipe"
    ispad("synth", "--out", tmp_path / "s.h5", "--n", 4, "--seed", 0, *SMALL)
    proc = subprocess.Popen([ISPAD, "info", str(tmp_path / "s.h5"), "--full"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read()
    proc.wait(timeout=300)
    proc.stderr.close()
    assert proc.returncode == 141, err
    assert err == ""


def test_a_second_synth_or_merge_to_a_busy_output_fails_at_once(tmp_path):
    # another process holds the writer lock of the output (as a running ispad synth does)
    from ispad_core._shared.files import exclusive_lock

    out = tmp_path / "s.h5"
    common = ["--n", 4, "--seed", 1, *SMALL]
    ispad("synth", "--out", tmp_path / "p.h5", *common)
    with exclusive_lock(out):
        for argv in (("synth", "--out", out, *common), ("merge", tmp_path / "p.h5", "--out", out, "--copy")):
            err = ispad(*argv, expect=1).stderr
            assert f"another process is writing {out}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5"]


# --------------------------------------------------------------------------- visibility, params, errors


def test_min_contrast_is_recorded_reproduced_and_summed_up_by_info(tmp_path):
    out = tmp_path / "s.h5"
    proc = ispad("synth", "--out", out, "--n", 12, "--seed", 2, "--min-contrast", 12, *SMALL)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("reproduce with: "))
    assert "--min-contrast 12" in line
    with open_stream(out) as s:
        assert s.attrs["min_contrast"] == 12.0
        assert (s.field("contrast")[s.labels == 1] >= 12).all()
    info = ispad("info", out, "--below", 20).stdout
    assert "visibility of the 6 defects (6 passed the synthesizer's test; minimum contrast 12 grey levels)" in info
    assert re.search(r"under 20 grey levels of contrast: \d+ \(", info)
    err = ispad("synth", "--out", tmp_path / "t.h5", "--min-contrast", -1, *SMALL, expect=2).stderr
    assert "argument --min-contrast: expected a number of grey levels in [0, 255], got '-1'" in err


def test_params_file_for_synth_and_gallery(tmp_path):
    mine = DefectParams(steps=(20, 40), contrast=(30.0, 40.0), threshold=0.2)
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(mine.to_dict()))
    proc = ispad("synth", "--out", tmp_path / "s.h5", "--n", 6, "--seed", 1, "--params", f, *SMALL)
    assert f"--params {f}" in proc.stdout and "--preset" not in proc.stdout
    with open_stream(tmp_path / "s.h5") as s:
        assert params_from_dict(s.attrs["preset"]) == mine and s.attrs["preset_name"] == "custom"
    mixture = tmp_path / "mix.json"
    mixture.write_text(json.dumps(PRESETS["mixed"].to_dict()))
    ispad("synth", "--out", tmp_path / "m.h5", "--n", 6, "--seed", 1, "--params", mixture, *SMALL)
    ispad("synth", "--out", tmp_path / "p.h5", "--n", 6, "--seed", 1, "--preset", "mixed", *SMALL)
    with open_stream(tmp_path / "m.h5") as a, open_stream(tmp_path / "p.h5") as b:
        for x, y in zip(a[:], b[:]):
            np.testing.assert_array_equal(x, y)
    ispad("gallery", "--out", tmp_path / "g.png", "--n", 2, "--size", 48, "--params", f)
    # errors name the file and the key
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**mine.to_dict(), "widht": [1, 2]}))
    err = ispad("synth", "--out", tmp_path / "x.h5", "--params", bad, *SMALL, expect=1).stderr
    assert f"--params: {bad}" in err and "widht" in err and len(err.strip().splitlines()) == 1
    data = PRESETS["mixed"].to_dict()
    data["components"][1]["params"]["contrast"] = [40, 10]
    bad.write_text(json.dumps(data))
    err = ispad("gallery", "--out", tmp_path / "y.png", "--params", bad, expect=1).stderr
    assert f"--params: {bad}: components[1] ('{PRESETS['mixed'].names[1]}').params: contrast" in err
    bad.write_text("{not json")
    assert "is not a JSON file" in ispad("synth", "--out", tmp_path / "x.h5", "--params", bad, *SMALL, expect=1).stderr
    err = ispad("synth", "--out", tmp_path / "x.h5", "--params", f, "--preset", "scratch", *SMALL, expect=1).stderr
    assert "--params and --preset: give one of them" in err
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.png").exists()


def test_gallery_annotate_prints_and_draws_the_figures(tmp_path):
    plain = ispad("gallery", "--out", tmp_path / "a.png", "--n", 3, "--size", 48, "--columns", 3)
    annotated = ispad("gallery", "--out", tmp_path / "b.png", "--n", 3, "--size", 48, "--columns", 3, "--annotate")
    lines = [x for x in annotated.stdout.splitlines() if re.match(r"\d+: ", x)]
    assert len(lines) == 3 and all("contrast" in x and "cnr" in x and "ssr" in x for x in lines)
    assert not any(re.match(r"\d+: ", x) for x in plain.stdout.splitlines())
    a, b = iio.imread(tmp_path / "a.png"), iio.imread(tmp_path / "b.png")
    assert b.shape[0] > a.shape[0] and b.shape[1] == a.shape[1]
    np.testing.assert_array_equal(b[4 : 4 + 48], a[4 : 4 + 48])  # the same defects, captions below


def test_synth_reads_16_bit_scans(tmp_path, image_dir):
    wide = tmp_path / "wide"
    wide.mkdir()
    for name in ("a.png", "b.png"):
        iio.imwrite(wide / name, iio.imread(image_dir / name).astype(np.uint16) * 257)
    assert iio.imread(wide / "a.png").dtype == np.uint16
    proc = ispad("synth", "--out", tmp_path / "w.h5", "--images", wide, "--n", 5, "--seed", 0, *SMALL)
    assert "2 of 2 scans have 16 bits per sample" in proc.stderr
    ispad("synth", "--out", tmp_path / "e.h5", "--images", image_dir, "--n", 5, "--seed", 0, *SMALL)
    with open_stream(tmp_path / "w.h5") as w, open_stream(tmp_path / "e.h5") as e:
        for x, y in zip(w[:], e[:]):
            np.testing.assert_array_equal(x, y)
        assert w.attrs["sources"][0]["bits"] == 16
    ispad("gallery", "--out", tmp_path / "g.png", "--images", wide, "--n", 2, "--size", 48)


def _main(argv, capsys):
    from ispad_core.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_user_errors_are_one_line_and_bugs_show_a_traceback(tmp_path, monkeypatch, capsys):
    from ispad_core.cli import argtypes, info
    from ispad_core.samples import builtin_images

    code, out = _main(["info", tmp_path / "none.h5"], capsys)  # OSError: a file
    assert code == 1 and out.err.startswith("ispad info: error:") and len(out.err.strip().splitlines()) == 1

    def validation(args):  # the library's own TypeError about an argument: one line
        from ispad_core._shared.validation import check_int

        check_int("seven", "n")

    monkeypatch.setattr(info, "run", validation)
    code, out = _main(["info", "x.h5"], capsys)
    assert code == 1 and out.err.startswith("ispad info: error: n: expected")

    def invisible(args):  # the library's own RuntimeError (a defect that never shows): one line
        from ispad_core.stream import balanced_stream

        list(balanced_stream(screen_print((40, 40), rng=0), 2, size=32, rng=0, max_redraws=0,
                             preset=DefectParams(threshold=1e9, max_attempts=1, margin=2)))

    monkeypatch.setattr(info, "run", invisible)
    code, out = _main(["info", "x.h5"], capsys)
    assert code == 1 and "no visible defect after 1 patches" in out.err

    def bug(args):  # a TypeError inside the library's code without its message convention: a bug
        return argtypes.fraction(None)

    monkeypatch.setattr(info, "run", bug)
    with pytest.raises(TypeError, match="float\\(\\) argument"):
        _main(["info", "x.h5"], capsys)

    def wrong_call(args):
        return builtin_images(0, 1, 2)

    monkeypatch.setattr(info, "run", wrong_call)
    with pytest.raises(TypeError, match="positional argument"):
        _main(["info", "x.h5"], capsys)

    def numpy_bug(args):
        return np.zeros(3) + "x"

    monkeypatch.setattr(info, "run", numpy_bug)
    with pytest.raises(Exception):  # numpy's own error type, whatever it is: never a one-line "error"
        _main(["info", "x.h5"], capsys)

    def runtime_elsewhere(args):
        raise RuntimeError("raised outside the library")

    monkeypatch.setattr(info, "run", runtime_elsewhere)
    with pytest.raises(RuntimeError, match="outside the library"):
        _main(["info", "x.h5"], capsys)


def test_the_command_tells_user_errors_by_type_not_by_message(monkeypatch, capsys):
    from ispad_core import InputTypeError, SetupError
    from ispad_core.cli import info

    def input_error(args):  # the type decides, whatever the message says
        raise InputTypeError("no convention in this message")

    monkeypatch.setattr(info, "run", input_error)
    code, out = _main(["info", "x.h5"], capsys)
    assert code == 1 and out.err.strip() == "ispad info: error: no convention in this message"

    def setup_error(args):
        raise SetupError("client: worker tcp://w:1 runs other versions")

    monkeypatch.setattr(info, "run", setup_error)
    code, out = _main(["info", "x.h5"], capsys)
    assert code == 1 and "runs other versions" in out.err

    def plain_type_error(args):  # a message that looks like the library's, but a plain TypeError: a bug
        raise TypeError("n: expected an int, got str")

    monkeypatch.setattr(info, "run", plain_type_error)
    with pytest.raises(TypeError, match="n: expected"):
        _main(["info", "x.h5"], capsys)


def test_first_run_says_it_compiles_the_kernels(tmp_path, monkeypatch, capsys):
    from ispad_core.stream import generation

    monkeypatch.setattr(generation, "stream_kernels_uncached", lambda: ["synth_batch"])
    code, out = _main(["synth", "--out", tmp_path / "a.h5", "--n", 4, "--seed", 0, "--size", 64], capsys)
    assert code == 0 and out.err.startswith("compiling kernels (first run only, about 30 s)\n")
    monkeypatch.setattr(generation, "stream_kernels_uncached", lambda: [])
    code, out = _main(["synth", "--out", tmp_path / "b.h5", "--n", 4, "--seed", 0, "--size", 64], capsys)
    assert code == 0 and "compiling" not in out.err


def test_evaluate_json_is_written_atomically_and_never_through_a_link(tmp_path, capsys):
    _scores(tmp_path / "s.csv", [("good/000.png", 0.1, 0), ("area/000.png", 0.9, 1)])
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "r.json").symlink_to(victim)
    code, out = _main(["evaluate", "--scores", tmp_path / "s.csv", "--json", tmp_path / "r.json", "--overwrite"], capsys)
    assert code == 1 and "--json" in out.err and len(out.err.strip().splitlines()) == 1
    assert victim.read_text() == "keep" and (tmp_path / "r.json").is_symlink()
    code, out = _main(["evaluate", "--scores", tmp_path / "s.csv", "--json", tmp_path / "new.json", "--format", "json"],
                      capsys)
    assert code == 0 and json.loads((tmp_path / "new.json").read_text()) == json.loads(out.out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "r.json", "s.csv", "victim.txt"]
