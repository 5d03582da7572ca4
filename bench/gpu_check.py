"""One GPU check, ready for the minutes a lent GPU machine gives: throughput, inspection, data rate.

Run (on the GPU machine, from the repository root; at most about 8 minutes)::

    PYTHONPATH=$PWD python bench/gpu_check.py --out gpu_check.json

and on any CPU, in under about a minute, with every size shrunk (what the test runs)::

    PYTHONPATH=$PWD python bench/gpu_check.py --out gpu_check.json --tiny

It prints one table and writes the same figures as JSON (rewritten after each section, so a run cut
short still leaves what it measured). Three sections:

``throughput``
    The paper's table-2 protocol (:func:`ispad_core.nn.measure_throughput`: preprocessing and
    forward pass of random uint8 patches already on the device, 256 x 256, batch 128, 10 warm-up
    iterations then 100 timed ones, 5 cycles, CUDA events) for the five backbones of
    :data:`ispad_core.nn.BACKBONES`, each in four variants: fp32 (torch's defaults, under which cuDNN
    convolutions may use TF32: recorded as ``tf32_conv``); bf16 autocast (fp16 where the
    device has no bf16); the same channels-last; the same under ``torch.compile``. Patches/s mean
    and std over the cycles.
``inspect``
    :func:`ispad_core.nn.inspect` of a 13 000 x 13 000 uint8 scan (a tiled
    :func:`ispad_core.samples.inspection_scan`) with an untrained ResNet-18 of patch 256 on the
    device, default stride and settings: wall time and windows/s, beside the bare forward pass of
    the same number of windows (preprocessed random batches already on the device).
``data``
    The training data through a torch ``DataLoader`` with worker processes, items/s, for
    :class:`ispad_core.stream.SyntheticStream` and for a stream file
    (:func:`ispad_core.stream.write_balanced_stream`, read back with
    :func:`ispad_core.io.open_stream`), against the rate at which a training step of ResNet-18 at
    the same batch consumes items on the device (mixed precision as ``ispad train``): their ratio,
    and whether the data keeps the device fed.

Every measurement is guarded: one that fails records its error string and the others go on. A
time budget (``--budget-s``, default 420 s) skips what would start after it is spent, also as a
recorded error; the ``torch.compile`` variants run last, since compiling costs most.

Goals printed beside the figures: ResNet-18 >= 30 000 patches/s on an H100-class GPU, the
13 000 x 13 000 scan in <= 2 s, data >= 1.5x the training step's consumption.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from ispad_core._shared.files import atomic_output, check_output_path
from ispad_core.io import open_stream
from ispad_core.nn import BACKBONES, classifier, inspect, measure_throughput, preprocess_batch
from ispad_core.nn.inference import InferenceSettings
from ispad_core.samples import builtin_images, inspection_scan
from ispad_core.stream import SyntheticStream, write_balanced_stream

SCHEMA = "ispad-gpu-check/1"
GOAL_RESNET18 = 30_000.0  # patches/s, H100-class GPU
GOAL_SCAN_S = 2.0  # seconds for the 13 000 x 13 000 scan
GOAL_DATA_RATIO = 1.5  # data items/s over training items/s
PRESET = "lsm2"


@dataclass(frozen=True)
class Sizes:
    """Every size of a run: the full check or its ``--tiny`` shrink."""

    patch: int = 256
    batch: int = 128
    warmup: int = 10
    cycles: int = 5
    reps: int = 100
    scan_tile: int = 1300  # the scan is a tile x tile inspection scan repeated scan_repeat times per side
    scan_repeat: int = 10
    scan_region: int = 192
    scan_runs: int = 2
    data_seconds: float = 20.0  # the longest a data source is timed
    data_batches: int = 48  # timed batches of a data source (after one warm-up batch per worker)
    file_items: int = 4096
    train_warmup: int = 5
    train_steps: int = 30
    compile_backend: str = "inductor"
    compile_backbones: tuple = BACKBONES


FULL = Sizes()
TINY = Sizes(patch=32, batch=8, warmup=1, cycles=2, reps=2, scan_tile=256, scan_repeat=2, scan_region=64, scan_runs=1,
             data_seconds=5.0, data_batches=4, file_items=64, train_warmup=1, train_steps=3, compile_backend="eager",
             compile_backbones=("resnet18",))


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class Budget:
    """Seconds since the start, against the budget after which nothing new starts."""

    seconds: float
    t0: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def spent(self) -> bool:
        return self.elapsed() > self.seconds


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 600 else text[:597] + "..."


def guarded(budget: Budget, fn: Callable[[], dict], *, empty: dict) -> dict:
    """``fn()`` (a dict of figures) with ``error: None``; on failure or a spent budget, ``empty`` with the error."""
    if budget.spent():
        return {**empty, "error": f"skipped: the time budget of {budget.seconds:g} s was spent"}
    try:
        return {**fn(), "error": None}
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, the check goes on
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {**empty, "error": _error_text(exc)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def half_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the device computes it (every CPU torch runs, most GPUs), else fp16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


# --------------------------------------------------------------------------- throughput


class Autocast(nn.Module):
    """``net`` under autocast to ``dtype`` (None: fp32), so that one protocol times every precision."""

    def __init__(self, net: nn.Module, device_type: str, dtype: torch.dtype | None, in_channels: int) -> None:
        super().__init__()
        self.net, self.device_type, self.dtype, self.in_channels = net, device_type, dtype, in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            return self.net(x)


def variants(device: torch.device) -> list[dict]:
    """The four variants of each backbone: fp32, half, half channels-last, half channels-last compiled."""
    half = half_dtype(device)
    return [
        {"variant": "fp32", "dtype": None, "channels_last": False, "compiled": False},
        {"variant": _NAMES[half], "dtype": half, "channels_last": False, "compiled": False},
        {"variant": f"{_NAMES[half]}+cl", "dtype": half, "channels_last": True, "compiled": False},
        {"variant": f"{_NAMES[half]}+cl+compile", "dtype": half, "channels_last": True, "compiled": True},
    ]


def throughput_row(net: nn.Module, v: dict, device: torch.device, sizes: Sizes) -> dict:
    """patches/s of one backbone variant with the paper's protocol."""
    net = net.to(device).eval()
    if v["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    inner = torch.compile(net, backend=sizes.compile_backend) if v["compiled"] else net
    model = Autocast(inner, device.type, v["dtype"], 1)
    t = measure_throughput(model, batch_size=sizes.batch, warmup=sizes.warmup, cycles=sizes.cycles, reps=sizes.reps,
                           device=device, amp=False, patch_size=sizes.patch, channels_last=v["channels_last"],
                           preprocess=PRESET)
    return {"patches_per_s": t.patches_per_s, "patches_per_s_std": t.patches_per_s_std, "ms_per_patch": t.ms_per_patch,
            "per_cycle": list(t.per_cycle), "timer": t.timer}


def measure_backbones(device: torch.device, sizes: Sizes, budget: Budget, rows: list, *, compiled: bool,
                      on_row: Callable[[], None]) -> None:
    """Append to ``rows`` the throughput rows of the uncompiled variants, or (``compiled``) the compiled ones;
    ``on_row()`` after each (the report is saved, so a run cut short keeps them)."""
    chosen = [v for v in variants(device) if v["compiled"] == compiled]
    names = sizes.compile_backbones if compiled else BACKBONES
    for name in BACKBONES:
        for v in chosen:
            base = {"backbone": name, "variant": v["variant"], "precision": _NAMES[v["dtype"] or torch.float32],
                    "channels_last": v["channels_last"], "compiled": v["compiled"], "batch": sizes.batch,
                    "patch": sizes.patch}
            empty = {**base, "patches_per_s": None, "patches_per_s_std": None}
            if name not in names:
                rows.append({**empty, "error": "skipped: compiled for ResNet-18 only in a --tiny run"})
                continue

            def run(name=name, v=v, base=base):
                torch.manual_seed(0)
                return {**base, **throughput_row(classifier(name, in_channels=1), v, device, sizes)}

            rows.append(guarded(budget, run, empty=empty))
            if compiled:
                torch._dynamo.reset()
            print(_row_line(rows[-1]), flush=True)
            on_row()


def _row_line(r: dict) -> str:
    if r["error"]:
        return f"  {r['backbone']:<16} {r['variant']:<18} error: {r['error']}"
    return f"  {r['backbone']:<16} {r['variant']:<18} {r['patches_per_s']:>12,.1f} +- {r['patches_per_s_std']:,.1f} patches/s"


# --------------------------------------------------------------------------- inspection


def make_scan(sizes: Sizes) -> np.ndarray:
    """The scan: an inspection scan with planted defects, tiled to ``scan_tile * scan_repeat`` per side."""
    tile = inspection_scan((sizes.scan_tile, sizes.scan_tile), rng=0, n_defects=2, region=sizes.scan_region).image
    return np.ascontiguousarray(np.tile(tile, (sizes.scan_repeat, sizes.scan_repeat)))


def bare_forward(model: nn.Module, windows: int, device: torch.device, precision: str, channels_last: bool,
                 sizes: Sizes, batch: int) -> float:
    """Seconds of the forward pass alone over ``windows`` preprocessed random windows on ``device``."""
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (batch, sizes.patch, sizes.patch), dtype=torch.uint8, generator=gen)
    x = preprocess_batch(raw, PRESET, device=device, channels_last=channels_last)
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    counts = [batch] * (windows // batch) + ([windows % batch] if windows % batch else [])
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for _ in range(2):
            model(x)
        _sync(device)
        t0 = time.perf_counter()
        for n in counts:
            out = model(x[:n])
        _ = out.float().sum().item()
        _sync(device)
        seconds = time.perf_counter() - t0
    model.to(memory_format=torch.contiguous_format)
    return seconds


def measure_inspect(device: torch.device, sizes: Sizes, budget: Budget) -> dict:
    """``inspect`` of the big scan against the bare forward pass of as many windows."""
    empty = {"scan_shape": None, "windows": None, "wall_s": None, "windows_per_s": None, "forward_s": None,
             "forward_windows_per_s": None, "inspect_over_forward": None}

    def run() -> dict:
        scan = make_scan(sizes)
        torch.manual_seed(0)
        model = classifier("resnet18", in_channels=1)
        settings = InferenceSettings(device=device, verbose=False)
        warm = np.ascontiguousarray(scan[: 4 * sizes.patch, : 4 * sizes.patch])
        inspect(model, warm, threshold=0.5, size=sizes.patch, preprocess=PRESET, settings=settings)  # warm-up
        walls, result = [], None
        for _ in range(sizes.scan_runs):
            _sync(device)
            t0 = time.perf_counter()
            result = inspect(model, scan, threshold=0.5, size=sizes.patch, preprocess=PRESET, settings=settings)
            _sync(device)
            walls.append(time.perf_counter() - t0)
        windows = int(result.scores.size)
        forward = bare_forward(model, windows, device, result.precision, result.channels_last, sizes,
                               settings.batch_size)
        wall = min(walls)
        return {"scan_shape": list(scan.shape), "windows": windows, "stride": result.stride, "wall_s": wall,
                "wall_s_runs": walls, "windows_per_s": windows / wall, "forward_s": forward,
                "forward_windows_per_s": windows / forward, "inspect_over_forward": wall / forward,
                "precision": result.precision, "channels_last": result.channels_last,
                "batch": settings.batch_size, "timings": {k: float(v) for k, v in result.timings.items()}}

    return guarded(budget, run, empty=empty)


# --------------------------------------------------------------------------- data


def stack_items(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate ``(image, mask, label)`` items into a uint8 image batch and int64 labels."""
    images = torch.from_numpy(np.stack([np.asarray(it[0]) for it in items]))
    return images, torch.tensor([int(it[-1]) for it in items], dtype=torch.int64)


def loader_rate(dataset: Any, sizes: Sizes, workers: int) -> dict:
    """Items/s of ``dataset`` through a DataLoader of ``workers`` processes (random order, the training's batch).

    The first ``workers`` batches (each worker's start) are not timed; then up to ``data_batches``
    batches or ``data_seconds`` seconds.
    """
    t_warm = time.perf_counter()
    for _ in DataLoader(dataset, batch_size=2, sampler=[0, 1], num_workers=1, collate_fn=stack_items):
        pass  # one worker first: on a fresh machine it compiles (and caches) the workers' kernels once
    warm_s = time.perf_counter() - t_warm
    total = sizes.batch * (workers + sizes.data_batches)
    sampler = RandomSampler(dataset, replacement=True, num_samples=total, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(dataset, batch_size=sizes.batch, sampler=sampler, num_workers=workers, collate_fn=stack_items,
                        pin_memory=torch.cuda.is_available())
    items, t0, seen = 0, None, 0
    for images, _labels in loader:
        seen += 1
        if seen == max(1, workers):
            t0 = time.perf_counter()
            continue
        if t0 is None:
            continue
        items += images.shape[0]
        if time.perf_counter() - t0 > sizes.data_seconds:
            break
    seconds = time.perf_counter() - t0
    if items == 0:
        raise RuntimeError("the loader gave no batch after its warm-up batches")
    return {"items_per_s": items / seconds, "items": items, "seconds": seconds, "workers": workers,
            "warm_s": warm_s}


def train_rate(device: torch.device, sizes: Sizes) -> dict:
    """Items/s a ResNet-18 training step consumes on ``device`` (uint8 batch from the host, as in ``ispad train``)."""
    torch.manual_seed(0)
    model = classifier("resnet18", in_channels=1).to(device).train()
    dtype = torch.float16 if device.type == "cuda" else None  # the training's default: fp16 autocast on CUDA only
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (sizes.batch, sizes.patch, sizes.patch), dtype=torch.uint8, generator=gen)
    labels = torch.arange(sizes.batch) % 2
    if device.type == "cuda":
        images = images.pin_memory()

    def step():
        x = preprocess_batch(images, PRESET, device=device)
        y = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(sizes.train_warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(sizes.train_steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"items_per_s": sizes.train_steps * sizes.batch / seconds, "steps": sizes.train_steps,
            "precision": _NAMES[dtype or torch.float32], "seconds": seconds}


def measure_data(device: torch.device, sizes: Sizes, budget: Budget, workers: int, scratch: Path) -> dict:
    """The two data sources against the training step's consumption."""
    images = builtin_images(0)[0]
    none = {"items_per_s": None}
    train = guarded(budget, lambda: train_rate(device, sizes), empty={**none, "steps": None})
    print(f"  training step        {_num(train['items_per_s'])} items/s  {train['error'] or ''}", flush=True)

    def synthetic():
        return loader_rate(SyntheticStream(images, n=sizes.batch * 64, size=sizes.patch, seed=0), sizes, workers)

    def stream_file():
        path = scratch / "stream.h5"
        t0 = time.perf_counter()
        write_balanced_stream(path, images, sizes.file_items, size=sizes.patch, seed=0, verbose=False)
        written = time.perf_counter() - t0
        with open_stream(path) as reader:
            rate = loader_rate(reader, sizes, workers)
        return {**rate, "write_s": written, "write_items_per_s": sizes.file_items / written}

    sources = []
    for name, fn in (("SyntheticStream", synthetic), ("stream file", stream_file)):
        row = {"source": name, **guarded(budget, fn, empty=dict(none))}
        ok = row["error"] is None and train["error"] is None
        row["ratio_to_training"] = row["items_per_s"] / train["items_per_s"] if ok else None
        row["keeps_device_fed"] = row["ratio_to_training"] >= 1.0 if ok else None
        sources.append(row)
        print(f"  {name:<20} {_num(row['items_per_s'])} items/s  ratio {_num(row['ratio_to_training'], '.2f')}  "
              f"{row['error'] or ''}", flush=True)
    return {"batch": sizes.batch, "patch": sizes.patch, "workers": workers, "training": train, "sources": sources}


def _num(x: Any, fmt: str = ",.1f") -> str:
    return "-" if x is None else format(x, fmt)


# --------------------------------------------------------------------------- goals and table


def goals(report: dict) -> list[dict]:
    """The three goals with the measured value beside each; ``met`` None where the goal does not apply."""
    gpu = report["device"].startswith("cuda")
    tiny = report["tiny"]
    r18 = [r["patches_per_s"] for r in report["throughput"] if r["backbone"] == "resnet18" and r["error"] is None]
    best = max(r18) if r18 else None
    out = [{"goal": "ResNet-18 patches/s (best variant)", "target": GOAL_RESNET18, "value": best, "compare": ">=",
            "met": (best >= GOAL_RESNET18) if (best is not None and gpu and not tiny) else None,
            "note": "for an H100-class GPU at 256 x 256, batch 128"}]
    ins = report["inspect"]
    full_scan = ins["scan_shape"] == [13000, 13000]
    out.append({"goal": "13 000 x 13 000 scan, seconds", "target": GOAL_SCAN_S, "value": ins["wall_s"], "compare": "<=",
                "met": (ins["wall_s"] <= GOAL_SCAN_S) if (ins["wall_s"] is not None and full_scan) else None,
                "note": "inspect wall time, best run"})
    for s in report["data"]["sources"]:
        ratio = s["ratio_to_training"]
        out.append({"goal": f"{s['source']} / training items/s", "target": GOAL_DATA_RATIO, "value": ratio,
                    "compare": ">=", "met": (ratio >= GOAL_DATA_RATIO) if (ratio is not None and not tiny) else None,
                    "note": f"{report['data']['workers']} DataLoader workers"})
    return out


def table(report: dict) -> str:
    """The one table of the run (markdown)."""
    lines = [f"GPU check on {report['device_name']} ({report['device']}), torch {report['torch']}"
             f"{', TINY sizes' if report['tiny'] else ''}, {report['elapsed_s']:.0f} s",
             "", "| section | item | figure | goal |", "|---|---|---|---|"]
    for r in report["throughput"]:
        fig = r["error"] or f"{r['patches_per_s']:,.0f} +- {r['patches_per_s_std']:,.0f} patches/s"
        goal = f">= {GOAL_RESNET18:,.0f}" if r["backbone"] == "resnet18" else ""
        lines.append(f"| throughput | {r['backbone']} {r['variant']} | {fig} | {goal} |")
    ins = report["inspect"]
    if ins["error"]:
        lines.append(f"| inspect | scan | {ins['error']} | <= {GOAL_SCAN_S:g} s |")
    else:
        h, w = ins["scan_shape"]
        lines.append(f"| inspect | {h} x {w} scan, {ins['windows']} windows, {ins['precision']} | {ins['wall_s']:.2f} s, "
                     f"{ins['windows_per_s']:,.0f} windows/s | <= {GOAL_SCAN_S:g} s |")
        lines.append(f"| inspect | bare forward, same windows | {ins['forward_s']:.2f} s, "
                     f"{ins['forward_windows_per_s']:,.0f} windows/s (inspect/forward {ins['inspect_over_forward']:.2f}x) | |")
    data = report["data"]
    tr = data["training"]
    lines.append(f"| data | training step, batch {data['batch']} | "
                 f"{tr['error'] or format(tr['items_per_s'], ',.0f') + ' items/s'} | |")
    for s in data["sources"]:
        fig = s["error"] or f"{s['items_per_s']:,.0f} items/s, {_num(s['ratio_to_training'], '.2f')}x training"
        lines.append(f"| data | {s['source']}, {data['workers']} workers | {fig} | >= {GOAL_DATA_RATIO:g}x |")
    lines += ["", "| goal | target | measured | met |", "|---|---|---|---|"]
    for g in report["goals"]:
        met = {True: "yes", False: "NO", None: "n/a"}[g["met"]]
        lines.append(f"| {g['goal']} | {g['compare']} {g['target']:,g} | {_num(g['value'], ',.2f')} | {met} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def write_report(report: dict, path: Path) -> None:
    """Write the report atomically (the run's own file: checked once at the start)."""
    with atomic_output(path, name="out", overwrite=True) as tmp:
        tmp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="JSON file to write (gpu_check.json)")
    p.add_argument("--tiny", action="store_true", help="every size shrunk: runs on a CPU in about a minute")
    p.add_argument("--device", default=None, help="torch device (default: cuda when there is one, else cpu)")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers (default: the CPU count less 2, at least 1; 2 with --tiny)")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="after this many seconds nothing new starts (recorded as skipped; default 420)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    check_output_path(args.out, "out", overwrite=args.overwrite)
    sizes = TINY if args.tiny else FULL
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    workers = args.workers if args.workers is not None else (2 if args.tiny else max(1, (os.cpu_count() or 2) - 2))
    budget = Budget(args.budget_s)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    report: dict[str, Any] = {
        "schema": SCHEMA, "tiny": bool(args.tiny), "device": str(device), "device_name": device_name(device),
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "budget_s": budget.seconds,
        "cudnn_benchmark": torch.backends.cudnn.benchmark, "tf32_conv": torch.backends.cudnn.allow_tf32,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "sizes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(sizes).items()},
        "throughput": [], "inspect": {}, "data": {}, "goals": [], "elapsed_s": 0.0,
    }

    def save():
        report["elapsed_s"] = budget.elapsed()
        write_report(report, args.out)

    print(f"throughput ({device}, batch {sizes.batch}, {sizes.patch} x {sizes.patch})", flush=True)
    measure_backbones(device, sizes, budget, report["throughput"], compiled=False, on_row=save)
    print("inspect", flush=True)
    report["inspect"] = measure_inspect(device, sizes, budget)
    save()
    print(f"data ({workers} workers)", flush=True)
    with tempfile.TemporaryDirectory(prefix="ispad-gpu-check-") as scratch:
        report["data"] = measure_data(device, sizes, budget, workers, Path(scratch))
    save()
    print(f"torch.compile ({sizes.compile_backend})", flush=True)
    measure_backbones(device, sizes, budget, report["throughput"], compiled=True, on_row=save)
    report["goals"] = goals(report)
    save()
    print()
    print(table(report))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
