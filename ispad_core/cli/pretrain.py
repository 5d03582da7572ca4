"""``ispad pretrain``: a backbone pretrained on the factory's own fault-free scans, for ``--weights``.

A face over :func:`ispad_core.nn.pretrain`: it parses, checks that ``--out`` may be written before
any work, pretrains, and writes the state dict atomically (nothing is left at ``--out`` if the run
fails or is interrupted).
"""

from __future__ import annotations

import argparse

from ispad_core.cli.argtypes import int_at_least, nonnegative, positive
from ispad_core.cli.errors import CLIError

__all__ = ["BACKBONE_NAMES", "add_parser", "run"]

#: The built-in backbones (``ispad_core.nn.BACKBONES``, spelled out so that building the parser
#: imports no torch; a test checks the two agree).
BACKBONE_NAMES = ("resnet18", "resnet50", "efficientnet_b0", "efficientnet_b4", "convnext_tiny")

DESCRIPTION = (
    "Pretrain a backbone without labels and without ImageNet weights, on fault-free scans of your own "
    "product: random patches are cut from the scans (inside --rois), augmented and preprocessed as 'ispad train' "
    "does; half of each patch, in squares of --mask-size pixels, is hidden, and the network learns to restore the "
    "hidden pixels from the visible ones (masked-patch reconstruction, L1 loss). The small decoder that restores "
    "them is thrown away; --out holds the backbone in torchvision's state-dict layout (no classification head), "
    "which 'ispad train --weights' loads as it loads an ImageNet file. Use the patch size, preprocessing and "
    "backbone you will train the detector with. See docs/pretrain.md for what it costs and what it gave."
)

EPILOG = """examples:
  ispad pretrain --images scans/ --out backbone.pth --steps 2000
  ispad pretrain --images scans/ --rois rois/ --patch-size 256 --backbone efficientnet_b0 --device cuda --out b0.pth
  ispad train --images scans/ --size 64 --weights backbone.pth --optimizer adamw --max-steps 600 --val val/ --out model.pt

The same --seed gives the same weights on the same machine and thread count. Starting 'ispad train' from
weights selects the fine-tuning recipe (SGD 5e-4); --optimizer adamw keeps AdamW 1e-3."""


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``ispad pretrain`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "pretrain",
        help="pretrain a backbone on fault-free scans (self-supervised) -> weights for 'ispad train --weights'",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--images", required=True, nargs="+", metavar="DIR", help="fault-free scans: folders or image files")
    p.add_argument("--rois", metavar="DIR", help="regions of interest, one mask per scan with the same file name: "
                   "patches lie wholly inside")
    p.add_argument("--out", required=True, metavar="FILE.pth", help="the weights file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--backbone", default="resnet18", choices=BACKBONE_NAMES, help="the network (default resnet18)")
    p.add_argument("--steps", type=positive, default=1000, help="optimizer steps (default 1000)")
    p.add_argument("--batch-size", type=int_at_least(2), default=32, help="patches per step (default 32)")
    p.add_argument("--patch-size", type=int_at_least(32), default=64, metavar="PX",
                   help="patch side, a multiple of 32: the detector's patch size (default 64)")
    p.add_argument("--mask-size", type=positive, default=8, metavar="PX",
                   help="side of the hidden squares, a divisor of --patch-size (default 8)")
    p.add_argument("--preprocess", default="lsm2", choices=("lsm1", "lsm2", "asm", "none"),
                   help="batch preprocessing preset, as 'ispad train --preprocess' (default lsm2)")
    p.add_argument("--augment", default="lsm1", choices=("lsm1", "lsm2", "asm", "none"),
                   help="table-8 augmentation of the patches, as 'ispad train --stream-augment' (default lsm1)")
    p.add_argument("--seed", type=nonnegative, default=0, help="initialisation, patches, augmentation, masks (default 0)")
    p.add_argument("--threads", type=positive, help="torch CPU threads")
    p.add_argument("--device", help="cpu, cuda or cuda:K (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (shown when stderr is a terminal)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``ispad pretrain``."""
    from ispad_core._shared.config import prefer_passive_openmp
    from ispad_core._shared.files import check_output_path

    prefer_passive_openmp()  # before torch loads its OpenMP runtime
    try:
        from ispad_core.nn import pretrain
    except ImportError:
        raise CLIError('ispad pretrain needs PyTorch: pip install "ispad-core[torch]"') from None
    from ispad_core.io import read_scans

    check_output_path(args.out, "--out", overwrite=args.overwrite)  # before the work, not after it
    if args.patch_size % 32:
        raise CLIError(f"--patch-size: expected a multiple of 32 (the backbones' stride), got {args.patch_size}")
    if args.patch_size % args.mask_size or args.patch_size // args.mask_size < 2:
        raise CLIError(f"--mask-size: expected a divisor of --patch-size {args.patch_size} giving at least 2 x 2 "
                       f"squares, got {args.mask_size}")
    scans = read_scans(args.images, rois=args.rois, name="--images", rois_name="--rois", min_size=args.patch_size)
    result = pretrain(
        scans, backbone=args.backbone, steps=args.steps, batch_size=args.batch_size, patch_size=args.patch_size,
        mask_size=args.mask_size, preprocess=args.preprocess, augment=args.augment, seed=args.seed,
        threads=args.threads, device=args.device, verbose=False if args.quiet else None,
    )
    result.save(args.out, overwrite=args.overwrite, name="--out")
    print(result)
    print(f"wrote {args.out} ({len(result.state_dict)} tensors, torchvision layout, no head)")
    print(f"train with: ispad train ... --backbone {args.backbone} --weights {args.out}"
          + ("" if args.patch_size == 256 else f" --size {args.patch_size}"))
    return 0
