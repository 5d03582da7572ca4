"""``ispad fit-preset``: a synthesizer params file fitted to a folder of real defects and their masks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ispad_core.cli.argtypes import positive, unit_interval
from ispad_core.cli.errors import CLIError


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``fit-preset`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "fit-preset",
        help="fit the synthesizer's ranges to real defects and their masks",
        description="Measure real defects (width, length, contrast, polarity, from each image and its mask), map the "
        "measured quantile ranges onto a base preset's parameters and write a params file that 'ispad synth --params' "
        "and 'ispad gallery --params' read. REAL holds group folders of images (REAL/<group>/<name>.png); the masks "
        "lie beside it as 'ispad benchmark' writes them (REAL_masks/<group>/<name>_mask.png, 0/255), or in --masks. "
        "Prints the fitted ranges beside the base preset's; what a mask cannot show keeps the base's range.",
        epilog="examples:\n  ispad fit-preset real/ --out fitted.json\n"
        "  ispad fit-preset real/ --group points --base dot-dark --out points.json --overwrite\n"
        "  ispad gallery --params fitted.json --out fitted.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("real", metavar="REAL", help="folder of real defects: REAL/<group>/<name>.png")
    p.add_argument("--out", required=True, metavar="FILE.json", help="the params file to write")
    p.add_argument("--masks", metavar="DIR", help="the masks' folder (default: REAL_masks beside REAL)")
    p.add_argument("--group", action="append", metavar="G", help="fit only this group (repeatable; default all)")
    p.add_argument("--base", default="mixed", metavar="PRESET", help="preset whose other fields (and morphologies) are kept (default mixed)")
    p.add_argument("--base-params", metavar="FILE.json", help="a params file as base instead of --base")
    p.add_argument("--quantiles", type=unit_interval, nargs=2, default=(0.05, 0.95), metavar=("LO", "HI"),
                   help="quantiles of the measured values that become each range (default 0.05 0.95)")
    p.add_argument("--min-defects", type=positive, default=3, help="a component with fewer defects keeps its base ranges (default 3)")
    p.add_argument("--all-rows", action="store_true", help="print the kept fields' rows for every component too")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)
    return p


def _masks_folder(args) -> Path:
    if args.masks:
        return Path(args.masks)
    real = Path(args.real).resolve()
    return real.parent / f"{real.name}_masks"


def read_pairs(args) -> tuple[list, list, list]:
    """(images, masks, files) of the selected groups; every image needs its ``<name>_mask.png``."""
    from ispad_core.io import read_image, read_real_defects

    real = read_real_defects(args.real, name="REAL")
    keep = range(len(real))
    if args.group:
        unknown = sorted(set(args.group) - set(real.groups))
        if unknown:
            raise CLIError(f"--group: {', '.join(unknown)} not in {args.real} (groups: {', '.join(sorted(set(real.groups)))})")
        keep = [i for i in keep if real.groups[i] in args.group]
    folder = _masks_folder(args)
    if not folder.is_dir():
        raise CLIError(f"--masks: {folder} is not a folder (masks as <group>/<name>_mask.png; pass --masks DIR)")
    images, masks, files = [], [], []
    for i in keep:
        rel = Path(real.files[i])
        path = folder / rel.parent / f"{rel.stem}_mask.png"
        if not path.is_file():
            raise CLIError(f"--masks: {path} is missing (the mask of {real.files[i]})")
        mask = read_image(path, name="--masks")
        images.append(real.images[i])
        masks.append(mask.any(axis=2) if mask.ndim == 3 else mask > 0)
        files.append(real.files[i])
    return images, masks, files


def run(args) -> int:
    """Fit; print the table of fitted ranges beside the base's and write the params file."""
    from ispad_core._shared.errors import InputValueError
    from ispad_core._shared.files import atomic_output, check_output_path
    from ispad_core.synth import fit_preset, read_params

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out: {out} exists; pass --overwrite to replace it")
    check_output_path(out, "--out", overwrite=args.overwrite)
    if args.base_params is not None:
        if args.base != "mixed":
            raise CLIError("--base and --base-params: give one of them")
        base = read_params(args.base_params, name="--base-params")
    else:
        base = args.base
    images, masks, files = read_pairs(args)
    try:
        report = fit_preset(images, masks, base=base, quantiles=tuple(args.quantiles), min_defects=args.min_defects)
    except InputValueError as exc:  # name the file, not the index
        text = str(exc)
        for i, f in enumerate(files):
            text = text.replace(f"masks[{i}]", f"--masks ({f})").replace(f"images[{i}]", f"REAL ({f})")
        raise CLIError(text.replace("base:", "--base:")) from None
    print(report.table(kept=args.all_rows), end="")
    with atomic_output(out, name="--out", overwrite=args.overwrite) as tmp:
        tmp.write_text(json.dumps(report.params.to_dict(), indent=1) + "\n", encoding="utf-8")
    groups = sorted({f.split("/")[0] for f in files})
    bright = int(np.sum(report.measures.polarity > 0))
    print(f"wrote {out} (fitted to {len(files)} defects of {', '.join(groups)}: {bright} brighter, {len(files) - bright} darker)")
    return 0
