"""``ispad train``: a detector from a synthetic stream, real defects and a validation set.

A face over :func:`ispad_core.nn.train_detector`: it parses, calls it, prints the report and where
the model file is. Under ``torchrun --nproc-per-node N`` it joins the process group torchrun set up
(NCCL on GPUs, Gloo on the CPU); every rank trains its shard, rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from typing import Any

from ispad_core.cli.argtypes import int_at_least, nonnegative, positive
from ispad_core.cli.errors import CLIError

__all__ = ["add_parser", "parse_fraction", "run"]


def parse_fraction(text: str) -> float:
    """A number in (0, 1] written as ``1/32``, ``0.03125`` or ``1``, parsed exactly.

    >>> parse_fraction("1/32"), parse_fraction("0.5")
    (0.03125, 0.5)
    """
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a fraction such as 1/32 or 0.25, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return float(value)


def _positive_float(text: str) -> float:
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``ispad train`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "train",
        help="train a defect detector: stream + real defects -> model file",
        description="Train a patch classifier on a balanced synthetic stream (ispad synth) with real defects "
        "injected at rate --p-inj, select the model on a validation set, set the decision threshold at its "
        "optimal F1, and write the model file (weights, threshold, validation report, settings). Real defects "
        "come from a folder: one group per sub-folder (real/points/, real/area/, ...) or a flat folder; images "
        "larger than the patch size are augmented and centre-cropped at every draw. Without --real the run is "
        "synthetic only. Without --weights the from-scratch recipe (AdamW 1e-3, cosine-annealed) is used, with "
        "--weights the paper's fine-tuning recipe (SGD 5e-4); the command prints which. Ctrl-C stops at the next "
        "step with a checkpoint and a usable model file; --resume continues the run. Runs unchanged under "
        "torchrun --nproc-per-node N.",
        epilog="examples:\n"
        "  ispad train --stream stream.h5 --real real/ --val val/ --out model.pt --max-steps 2000\n"
        "  ispad train --stream stream.h5 --real real/ --p-inj 1/32 --fraction 1/8 --groups area --val val/ \\\n"
        "              --backbone resnet18 --weights resnet18.pth --device cuda --out model.pt\n"
        "  ispad train --images scans/ --n 20000 --real real/ --val val/ --out model.pt   # no stream file\n"
        "  ispad train --images scans/ --size 64 --max-steps 2000 --val val/ --out model.pt   # from scratch: curriculum 6:0.75:native\n"
        "  ispad train --stream fault_free.h5 --real real/ --mode oversampling --val val/ --out model.pt\n"
        "  ispad train --stream stream.h5 --real real/ --negatives good/ --from model.pt --val val/ --out model2.pt\n"
        "  torchrun --nproc-per-node 4 -m ispad_core train --stream stream.h5 --real real/ --val val/ --out model.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--stream", metavar="FILE.h5", help="the balanced synthetic stream (ispad synth)")
    src.add_argument("--images", nargs="+", metavar="DIR", help="fault-free scans (folders or files): draw the "
                     "balanced stream on the fly instead of reading a file, with fresh patches and defects every epoch")
    p.add_argument("--out", required=True, metavar="MODEL.pt", help="the model file to write")
    p.add_argument("--real", metavar="DIR", help="real defect images (PNG/TIFF/BMP), one group per sub-folder; "
                   "without it the run is synthetic only")
    p.add_argument("--negatives", metavar="DIR", help="confirmed false alarms (the --good-out folder of 'ispad crops "
                   "--at decisions.csv'): each fault-free item of the stream is replaced by one with probability --p-neg, "
                   "augmented and cropped as the real defects, label 0")
    p.add_argument("--p-neg", type=parse_fraction, metavar="P", help="with --negatives: the replacement probability of "
                   "a fault-free item, in (0, 1/2] (default 1/16)")
    p.add_argument("--from", dest="init_from", metavar="MODEL.pt", help="start from the weights of this model file "
                   "(same backbone, channels and patch size; the fine-tuning recipe); recorded in the new model file")
    p.add_argument("--val", metavar="PATH", help="validation set: an MVTec-layout folder, a folder of good/ and defect "
                   "sub-folders, or a stream file (default: the last tenth of the stream, held out)")
    p.add_argument("--p-inj", type=parse_fraction, metavar="P", help="injection probability in [1/B, 1/4], e.g. 1/32 "
                   "(the default; 1/2 with --mode oversampling)")
    p.add_argument("--backbone", default="resnet18", help="resnet18 (default), resnet50, efficientnet_b0, "
                   "efficientnet_b4, convnext_tiny, or package.module:function (needs --allow-factory)")
    p.add_argument("--allow-factory", nargs="?", const=True, default=None, metavar="NAME",
                   help="confirm that --backbone package.module:function may be imported and run")
    p.add_argument("--fraction", type=parse_fraction, metavar="F", help="use this fraction of the real defects "
                   "(nested: 1/16 uses defects every larger fraction uses), e.g. 1/8")
    p.add_argument("--groups", metavar="G[,G]", help="use only real defects of these groups (sub-folder names), e.g. area")
    p.add_argument("--selection-seed", type=nonnegative, default=0, help="the shuffle behind --fraction (default 0)")
    p.add_argument("--mode", choices=("mixed", "oversampling"), default="mixed",
                   help="mixed injection into a balanced stream (default) or oversampling over a fault-free stream")
    p.add_argument("--weights", metavar="FILE.pth", help="pretrained weights in torchvision's layout (local file)")
    p.add_argument("--device", help="cpu, cuda or cuda:K (default: cuda if available)")
    p.add_argument("--max-steps", type=positive, metavar="N", help="stop after N optimizer steps")
    p.add_argument("--max-epochs", type=positive, metavar="N", help="stop after N epochs")
    p.add_argument("--seed", type=nonnegative, default=0, help="initialisation, data order and injections (default 0)")
    p.add_argument("--batch-size", type=positive, default=128, help="patches per step and process (default 128)")
    p.add_argument("--lr", type=_positive_float, help="start learning rate (default: the recipe's)")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), help="default: the recipe's")
    p.add_argument("--val-every", type=positive, metavar="STEPS", help="validate and checkpoint every STEPS steps "
                   "(default: every epoch)")
    p.add_argument("--patience", type=positive, default=20, help="validations without improvement before stopping (default 20)")
    p.add_argument("--preprocess", default="lsm2", choices=("lsm1", "lsm2", "asm", "none"),
                   help="batch preprocessing preset (default lsm2: 3 x 3 Gaussian smoothing)")
    p.add_argument("--augment", default="auto", choices=("auto", "lsm1", "lsm2", "asm", "none"), help="augmentation of real defects: lsm1, lsm2, asm, none, or auto "
                   "(the stream's; default)")
    p.add_argument("--workers", type=nonnegative, help="data loader processes (default: half the CPUs, 1 to 4)")
    p.add_argument("--threads", type=positive, help="torch CPU threads")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="mixed precision in training: auto (default) is fp16 autocast on CUDA, bf16 autocast on a CPU "
                   "that computes bf16 natively (AVX-512 BF16 or AMX: about 1.5x the fp32 rate, the same test figures) "
                   "and fp32 on other CPUs; on is bf16 on any CPU (emulated there, and slower); off is fp32. The "
                   "threshold is set on full-precision scores")
    p.add_argument("--log-every", type=int_at_least(1), metavar="STEPS",
                   help="progress line every STEPS steps when the output is not a terminal (default: about every 30 s)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run of --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (and start an unfinished run over)")
    g = p.add_argument_group("on-the-fly stream (with --images)")
    g.add_argument("--rois", metavar="DIR", help="regions of interest, one mask per scan with the same file name")
    g.add_argument("--n", type=positive, default=20000, help="patches per epoch (default 20000)")
    g.add_argument("--size", type=positive, default=256, help="patch side in pixels (default 256)")
    g.add_argument("--preset", default="mixed", help="defect preset of ispad_core.synth.PRESETS (default mixed)")
    g.add_argument("--stream-augment", default="lsm1", help="table-8 augmentation of the stream's patches: lsm1 "
                   "(default), lsm2, asm or none")
    g.add_argument("--stream-seed", type=nonnegative, help="seed of the stream (default: --seed)")
    g.add_argument("--curriculum", metavar="START:FRACTION[:SHAPE][:native]", help="contrast curriculum: the synthetic "
                   "defects start START times as strong (1 to 10) and anneal to the preset's contrast over the first "
                   "FRACTION of the steps, linearly (default) or 'cosine', e.g. 3:0.5; a last ':native' keeps the best "
                   "model of the steps at native contrast only (6:0.75:native); needs --max-steps or "
                   "--max-epochs; recorded in the model file; 'none' for none (default: 6:0.75:native for a run "
                   "from scratch with --images and --max-steps or --max-epochs, else none)")
    p.add_argument("--quiet", action="store_true", help="no progress, only the report")
    p.set_defaults(func=run)
    return p


def _check_factory(args) -> None:
    from ispad_core.nn.backbones import BACKBONES

    if args.backbone in BACKBONES:
        if args.allow_factory is not None:
            raise CLIError(f"--allow-factory: --backbone {args.backbone} is built in; nothing to allow")
        return
    if args.allow_factory is None:
        raise CLIError(f"--backbone: {args.backbone} is not built in ({', '.join(BACKBONES)}); a factory "
                       f"package.module:function is imported and run: add --allow-factory to confirm")
    if args.allow_factory is not True and args.allow_factory != args.backbone:
        raise CLIError(f"--allow-factory: names {args.allow_factory}, but --backbone is {args.backbone}")


def _stream_source(args):
    """The stream file's path, or with ``--images`` a :class:`~ispad_core.stream.SyntheticStream`."""
    if args.stream is not None:
        return args.stream
    from ispad_core.io import read_scans
    from ispad_core.stream import SyntheticStream

    scans = read_scans(args.images, rois=args.rois, name="--images", rois_name="--rois")
    return SyntheticStream(
        scans.images, rois=scans.rois, n=args.n, size=args.size, preset=args.preset,
        augment=None if args.stream_augment == "none" else args.stream_augment,
        seed=args.seed if args.stream_seed is None else args.stream_seed,
        defect_fraction=0.0 if args.mode == "oversampling" else 0.5, names=scans.names,
    )


def run(args) -> int:
    """Run ``ispad train``; returns the exit status (130 when Ctrl-C stopped the run)."""
    from ispad_core._shared.config import prefer_passive_openmp

    prefer_passive_openmp()  # before torch loads its OpenMP runtime
    try:
        from ispad_core.nn import runtime, train_detector
    except ImportError:
        raise CLIError('ispad train needs PyTorch: pip install "ispad-core[torch]"') from None
    _check_factory(args)

    groups = None if args.groups is None else [g.strip() for g in args.groups.split(",") if g.strip()]
    if groups is not None and not groups:
        raise CLIError("--groups: expected group names separated by commas, got nothing")
    if args.groups is not None and args.real is None:
        raise CLIError("--groups needs --real")
    if args.fraction is not None and args.real is None:
        raise CLIError("--fraction needs --real")
    if args.p_inj is not None and args.real is None:
        raise CLIError("--p-inj needs --real (without it the run is synthetic only)")
    if args.p_neg is not None and args.negatives is None:
        raise CLIError("--p-neg needs --negatives")
    if args.p_neg is not None and args.p_neg > 0.5:
        raise CLIError(f"--p-neg: expected a fraction in (0, 1/2], got {args.p_neg:g}")
    if args.init_from is not None and args.weights is not None:
        raise CLIError("--from and --weights both set the starting weights; give one")
    _default_curriculum(args)
    if args.curriculum is not None and args.images is None:
        raise CLIError("--curriculum scales the defects of a stream drawn on the fly: it needs --images "
                       "(a stream file's defects are fixed)")
    if args.curriculum is not None and args.max_steps is None and args.max_epochs is None:
        raise CLIError("--curriculum anneals over a fraction of the run: give --max-steps or --max-epochs")
    started_group = runtime.join_torchrun_group()
    try:
        rank = runtime.rank()
        device = args.device if args.device is not None else runtime.process_device(started_group)
        result = train_detector(
            _stream_source(args),
            out=args.out,
            real=args.real,
            negatives=args.negatives,
            val=args.val,
            fraction=args.fraction,
            groups=groups,
            selection_seed=args.selection_seed,
            settings=train_settings(args, device),
            resume=args.resume,
            overwrite=args.overwrite,
        )
        if rank == 0:
            print(result)
            if result.interrupted:
                print(f"interrupted: {args.out} holds the best model so far; run the same command with --resume to "
                      f"continue", file=sys.stderr)
    finally:
        if started_group:
            runtime.leave_process_group()
    return 130 if result.interrupted else 0


def _default_curriculum(args) -> None:
    """Settle ``args.curriculum``: ``none`` is no curriculum; unset, a run from scratch (no
    --weights, no --from) on a stream drawn on the fly with a set length gets
    :data:`~ispad_core._shared.recipes.FROM_SCRATCH_CURRICULUM`, and says so."""
    from ispad_core._shared.recipes import FROM_SCRATCH_CURRICULUM

    if args.curriculum is not None:
        if args.curriculum.strip().lower() == "none":
            args.curriculum = None
        return
    scratch = args.weights is None and args.init_from is None
    if scratch and args.images is not None and (args.max_steps is not None or args.max_epochs is not None):
        args.curriculum = FROM_SCRATCH_CURRICULUM
        if not args.quiet:
            print(f"from scratch on a stream drawn on the fly: contrast curriculum {FROM_SCRATCH_CURRICULUM} (the "
                  "defects start 6x as strong, reach the preset's contrast at three quarters of the run, and the model "
                  "is selected from there on; --curriculum none turns it off)", flush=True)


def _amp(choice: str, device: Any) -> bool | None:
    """TrainSettings.amp of ``--amp``: on, off, or auto (:func:`ispad_core.nn.training.auto_amp`)."""
    from ispad_core.nn.training import auto_amp

    return {"on": True, "off": False}[choice] if choice != "auto" else auto_amp(device)


def train_settings(args, device: Any = None):
    """The :class:`~ispad_core.nn.TrainSettings` of the options of ``ispad train``."""
    from ispad_core.nn import TrainSettings

    return TrainSettings(
        p_inj=args.p_inj,
        backbone=args.backbone,
        mode=args.mode,
        weights=args.weights,
        init_from=args.init_from,
        p_neg=args.p_neg,
        augment=None if args.augment == "none" else args.augment,
        preprocess=None if args.preprocess == "none" else args.preprocess,
        device=device,
        max_steps=args.max_steps,
        max_epochs=args.max_epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        val_every=args.val_every,
        patience=args.patience,
        workers=args.workers,
        threads=args.threads,
        amp=_amp(getattr(args, "amp", "auto"), device),
        curriculum=getattr(args, "curriculum", None),
        verbose=not args.quiet,
        log_every=args.log_every,
    )
