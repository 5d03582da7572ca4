"""Run the README's "From your scans to a verdict" commands verbatim, on a small scale.

The bash block of that README section is read as it stands; only its sizes are made small by a
fixed table of substitutions, each of which must match exactly once (a README edit that changes a
command makes this script fail instead of silently testing something else). The inputs the block
names (scans/, rois/, defect_scans/ with defects.csv, val/, new_scans/) are laid out first from the
library's built-in sample. Every command must exit 0; the outputs are then checked.

Usage: python .ci/factory_path.py WORKDIR
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"

#: (text in the README, its small-scale stand-in). Train runs more than one epoch (640 patches,
#: batch 32: 20 steps an epoch) with the real defects and the default DataLoader workers.
SMALL = [
    ("--n 200000 --size 256", "--n 640 --size 64"),
    ("--size 512 --out real/", "--size 96 --out real/"),
    ("--p-inj 1/32 --out model.pt", "--p-inj 1/32 --out model.pt --max-steps 50 --batch-size 32 --val-every 25"),
]


def readme_block() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## From your scans to a verdict"):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    for old, new in SMALL:
        if block.count(old) != 1:
            raise SystemExit(f"README: expected {old!r} once in the factory path, found it {block.count(old)} times")
        block = block.replace(old, new)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def lay_out_inputs(work: Path) -> None:
    """scans/, rois/, defect_scans/ + defects.csv, val/ and new_scans/ from the built-in sample."""
    from ispad_core.io import write_png
    from ispad_core.samples import inspection_scan, screen_print
    from ispad_core.synth import synthesize_batch

    for folder in ("scans", "rois", "defect_scans", "val/good", "val/defect", "new_scans"):
        (work / folder).mkdir(parents=True)
    for k in range(3):
        scan = screen_print((384, 384), rng=k)
        write_png(work / "scans" / f"sheet_{k}.png", scan)
        roi = np.zeros(scan.shape, dtype=np.uint8)
        roi[16:-16, 16:-16] = 255  # a margin outside the region of interest
        write_png(work / "rois" / f"sheet_{k}.png", roi)
    rows = []
    for k in range(2):
        scan = inspection_scan((768, 768), rng=100 + k, n_defects=2)
        write_png(work / "defect_scans" / f"defect_{k}.png", scan.image)
        for j, (row, col) in enumerate(scan.centres):
            rows.append((f"defect_{k}.png", int(row), int(col), "points" if j % 2 == 0 else "area"))
    with open(work / "defects.csv", "w", newline="") as f:
        csv.writer(f).writerows([("scan", "row", "col", "group"), *rows])
    # a labelled validation set: good/ and one folder of defective patches
    good = [screen_print((64, 64), rng=1000 + k) for k in range(40)]
    for k, patch in enumerate(good):
        write_png(work / "val" / "good" / f"{k:03d}.png", patch)
    defects = synthesize_batch(np.stack(good[:8]), "mixed", rng=2000).images
    for k, patch in enumerate(defects):
        write_png(work / "val" / "defect" / f"{k:03d}.png", patch)
    for k in range(2):
        write_png(work / "new_scans" / f"new_{k}.png", inspection_scan((640, 640), rng=3000 + k, n_defects=1).image)


def main(work: Path) -> int:
    work.mkdir(parents=True, exist_ok=False)
    lay_out_inputs(work)
    for line in readme_block():
        started = time.perf_counter()
        print(f"$ {line}", flush=True)
        done = subprocess.run(line, shell=True, cwd=work, executable="/bin/bash")
        print(f"  exit {done.returncode} after {time.perf_counter() - started:.0f} s", flush=True)
        if done.returncode != 0:
            return done.returncode
    summary = (work / "results" / "summary.csv").read_text()
    assert summary.count("\n") == 3, summary  # a header and one row per new scan
    for name in ("new_0", "new_1"):
        torch_scores = json.loads((work / "results" / f"{name}.json").read_text())
        onnx_scores = json.loads((work / "results_onnx" / f"{name}.json").read_text())
        # torch may score in bf16 on this CPU, onnxruntime in fp32: close, not equal
        assert abs(torch_scores["max_score"] - onnx_scores["max_score"]) < 0.05, (torch_scores, onnx_scores)
    print("the README's factory path ran to the end:", ", ".join(sorted(p.name for p in work.iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
