"""Training throughput of ResNet18 (CIFAR stem): a plain fastai pipeline against dmlbench's.

Measured side by side in one run, for 32x32 RGB and 28x28 grey images and each batch size:

  (a) fastai_plain  the pipeline as the original study built it: PNG files read by fastai's
                    per-item DataLoader (worker processes decode each image, pad 4 + random
                    crop + flip per item on the CPU, as fastai's CIFAR recipe rand_pad(4)),
                    the default Learner (fastai's Adam, float32, default callbacks);
  (b) eager         dmlbench's training path (dmlbench.train.run.RunTrainer): uint8 dataset on
                    the device, crop/flip/normalise per batch on the device, bf16 autocast,
                    channels_last, fused AdamW, no host synchronisation per step; eager;
  (c) compiled      (b) with the backbone's training step through torch.compile.

Images per second count training steps only (forward, loss, backward, optimiser step, batch
preparation), after warm-up steps (and, for (c), after compilation). peak_fraction is the
achieved bf16 FLOP rate of (c) — 3 x the forward FLOPs of ResNet18 counted by
torch.utils.flop_counter — over the device's dense bf16 peak. Writes
bench/results/train_speed-<device>.json and prints a table.

    python -m bench.train_speed                  # on a GPU: batch sizes 256, 512, 1024
    python -m bench.train_speed --quick          # CPU smoke run, tiny sizes (a minute)

Target on an H100: (c) >= 5x (a).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.common import RESULTS, write_result
from dmlbench.data.sources import Dataset
from dmlbench.data.splits import run_cases
from dmlbench.train.device import resolve_device, setup_device
from dmlbench.train.models import resnet18_cifar
from dmlbench.train.run import RunTrainer

TARGET_SPEEDUP = 5.0
INPUTS = {"rgb32": (32, 32, 3), "grey28": (28, 28, 1)}
VARIANTS = {"a": "fastai_plain", "b": "eager", "c": "compiled"}
#: Dense bf16 tensor-core peak in TFLOP/s (vendor data sheets, without sparsity), matched in
#: this order against torch.cuda.get_device_name().
BF16_PEAK_TFLOPS = [
    (r"H100.*PCIe", 756.0),
    (r"H100.*NVL", 835.0),
    (r"H100", 989.0),
    (r"H200", 989.0),
    (r"GH200", 989.0),
    (r"B200", 2250.0),
    (r"A100", 312.0),
    (r"A800", 312.0),
    (r"L40S", 362.0),
    (r"L40", 181.0),
    (r"L4\b", 121.0),
    (r"A10\b", 125.0),
    (r"A6000", 155.0),
]


def bf16_peak_tflops(device_name: str) -> float | None:
    for pattern, tflops in BF16_PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return tflops
    return None


def forward_flops_per_image(shape: tuple[int, int, int]) -> int:
    """FLOPs (2 per multiply-add) of one ResNet18 forward pass, counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    h, w, c = shape
    model = resnet18_cifar(c).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, c, h, w))
    return int(counter.get_total_flops())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_timer(device: torch.device, warmup: int, steps: int):
    """fastai callback: times `steps` training steps after `warmup` ones, then stops the fit."""
    from fastai.callback.core import Callback, CancelFitException

    class StepTimer(Callback):
        order = 99

        def before_fit(self):
            self.n, self.seconds = 0, None

        def after_batch(self):
            if not self.training:
                return
            self.n += 1
            if self.n == warmup:
                synchronize(device)
                self.t0 = time.perf_counter()
            elif self.n == warmup + steps:
                synchronize(device)
                self.seconds = time.perf_counter() - self.t0
                raise CancelFitException

    return StepTimer()


# --------------------------------------------------------------------------- (a) plain fastai
def write_png_folder(root: Path, shape: tuple[int, int, int], n_train: int, n_classes: int = 10, seed: int = 0) -> None:
    """root/{train,valid}/<class>/*.png with random pixels (decoding cost is that of real images)."""
    from PIL import Image

    h, w, c = shape
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("valid", 2 * n_classes)):
        for cls in range(n_classes):
            (root / split / f"class{cls}").mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
        for i in range(n):
            img = Image.fromarray(pixels[i, :, :, 0] if c == 1 else pixels[i], mode="L" if c == 1 else "RGB")
            img.save(root / split / f"class{i % n_classes}" / f"{i:06d}.png")


def run_fastai_plain(
    root: Path, shape, batch_size: int, device: torch.device, warmup: int, steps: int, workers: int | None
) -> float:
    import fastai.callback.progress  # noqa: F401
    import fastai.callback.schedule  # noqa: F401
    from fastai.data.block import CategoryBlock, DataBlock
    from fastai.data.transforms import GrandparentSplitter, Normalize, get_image_files, parent_label
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai.metrics import accuracy
    from fastai.vision.augment import CropPad, FlipItem, RandomCrop
    from fastai.vision.core import PILImage, PILImageBW
    from fastai.vision.data import ImageBlock

    h, w, c = shape
    item_tfms = [CropPad((h + 8, w + 8), pad_mode="zeros"), RandomCrop((h, w))]
    if c == 3:
        item_tfms.append(FlipItem(0.5))
    block = DataBlock(
        blocks=(ImageBlock(cls=PILImage if c == 3 else PILImageBW), CategoryBlock),
        get_items=get_image_files,
        splitter=GrandparentSplitter(train_name="train", valid_name="valid"),
        get_y=parent_label,
        item_tfms=item_tfms,
        batch_tfms=[Normalize.from_stats([0.5] * c, [0.25] * c)],
    )
    kw = {} if workers is None else {"num_workers": workers}
    dls = block.dataloaders(root, bs=batch_size, device=device, **kw)
    model = nn.Sequential(resnet18_cifar(c), nn.Linear(512, 10))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    if len(dls.train) < warmup + steps:
        raise SystemExit(f"fastai_plain: {len(dls.train)} batches per epoch < {warmup + steps}; more images needed")
    timer = step_timer(device, warmup, steps)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-3, cbs=[timer])
    return timer.seconds


# --------------------------------------------------------------------------- (b), (c) dmlbench
def synthetic_dataset(shape, n_train: int, n_classes: int = 10, seed: int = 0) -> Dataset:
    h, w, c = shape
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train, h, w, c), dtype=np.uint8)
    y = (np.arange(n_train) % n_classes).astype(np.int64)
    x_test, y_test = x[: 2 * n_classes].copy(), y[: 2 * n_classes].copy()
    return Dataset(x, y, x_test, y_test, [f"class{i}" for i in range(n_classes)])


def recipe_spec(shape, batch_size: int, compile_: bool) -> dict:
    rgb = shape[2] == 3
    return {
        "dataset": "synthetic",
        "source": "folder",
        "class_order": "canonical",
        "flip": rgb,
        "n_anomaly": 0,
        "method": "conventional",
        "method_params": {"mixup": False, "mixup_alpha": 0.4},
        "n_per_class": "all",
        "seed": 0,
        "cases": 1,
        "model": {"backbone": "resnet18", "embedding_dim": 64},
        "training": {
            "epochs": 1,
            "batch_size": batch_size,
            "lr": 3e-3,
            "weight_decay": 0.01,
            "val_fraction": 0.01,
            "crop_padding": 4 if rgb else 2,
            "optimizer": "adam",
            "precision": "auto",
            "compile": compile_,
        },
    }


def run_dmlbench(
    ds: Dataset,
    shape,
    batch_size: int,
    device: torch.device,
    warmup: int,
    steps: int,
    compile_: bool,
    compile_options: dict,
) -> tuple[float, dict]:
    spec = recipe_spec(shape, batch_size, compile_)
    if compile_:
        torch._dynamo.reset()  # a fresh compilation per batch size, not a dynamic-shape one
    case = run_cases(ds, spec)[0]
    t0 = time.perf_counter()
    trainer = RunTrainer(ds, spec, device, compile_options=compile_options, warm_up_batch_size=batch_size)
    setup_seconds = time.perf_counter() - t0
    learn, _ = trainer.learner(case)
    if len(learn.dls.train) < warmup + steps:
        raise SystemExit(f"{len(learn.dls.train)} batches per epoch < {warmup + steps}; more images needed")
    timer = step_timer(device, warmup, steps)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, spec["training"]["lr"], cbs=[timer])
    info = {
        "precision": trainer.precision,
        "compiled": trainer.compiled,
        "compile_fallback": trainer.compile_fallback,
        "setup_seconds": round(setup_seconds, 2),
    }
    del learn, trainer
    return timer.seconds, info


def device_label(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{threads}threads"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--inputs", nargs="+", choices=list(INPUTS), default=list(INPUTS))
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--warmup", type=int, default=8, help="untimed training steps first (default 8)")
    p.add_argument("--steps", type=int, default=40, help="timed training steps (default 40)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--workers", type=int, default=None, help="(a): DataLoader workers (default: fastai's)")
    p.add_argument(
        "--compile-mode",
        default=None,
        help="(c): torch.compile mode, e.g. max-autotune-no-cudagraphs (default: the pipeline's)",
    )
    p.add_argument(
        "--compile-backend",
        default=None,
        help="(c): torch.compile backend (default inductor; --quick on the CPU: eager)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: batch size 8, 1 warm-up + 2 timed steps, results file *-quick.json",
    )
    p.add_argument("--scratch", type=Path, default=None, help="folder for the PNG files of (a) (default: a temp dir)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/train_speed-<device>.json)")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batch_sizes, args.warmup, args.steps = [8], 1, 2
    setup_device(device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(False)  # speed, not repeatability, is measured here
    compile_options = {}
    if args.compile_mode:
        compile_options["mode"] = args.compile_mode
    backend = args.compile_backend or ("eager" if args.quick and device.type == "cpu" else None)
    if backend:
        compile_options["backend"] = backend

    label = device_label(device, torch.get_num_threads())
    peak = bf16_peak_tflops(label) if device.type == "cuda" else None
    n_images = (args.warmup + args.steps + 1) * max(args.batch_sizes)
    ips: dict = {name: {v: {} for v in VARIANTS.values()} for name in args.inputs}
    details: dict = {name: {} for name in args.inputs}
    flops = {name: forward_flops_per_image(INPUTS[name]) for name in args.inputs}
    scratch_root = Path(tempfile.mkdtemp(prefix="train_speed-", dir=args.scratch))
    try:
        for name in args.inputs:
            shape = INPUTS[name]
            png_root = scratch_root / name
            if "a" in args.variants:
                t0 = time.perf_counter()
                write_png_folder(png_root, shape, n_images)
                print(f"{name}: wrote {n_images} PNG files in {time.perf_counter() - t0:.0f}s", flush=True)
            # Enough device images for the timed steps in one epoch (+ the validation carve-out).
            ds = synthetic_dataset(shape, int(n_images * 1.05) + 64)
            for bs in args.batch_sizes:
                for key in args.variants:
                    variant = VARIANTS[key]
                    if key == "a":
                        seconds = run_fastai_plain(png_root, shape, bs, device, args.warmup, args.steps, args.workers)
                        info = {"precision": "fp32", "compiled": False}
                    else:
                        seconds, info = run_dmlbench(
                            ds,
                            shape,
                            bs,
                            device,
                            args.warmup,
                            args.steps,
                            key == "c",
                            compile_options if key == "c" else {},
                        )
                    rate = args.steps * bs / seconds
                    ips[name][variant][str(bs)] = round(rate, 1)
                    details[name].setdefault(variant, {})[str(bs)] = info
                    print(f"{name} bs {bs:5d} {variant:13s} {rate:10.0f} images/s  {info}", flush=True)
                    gc.collect()
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
            shutil.rmtree(png_root, ignore_errors=True)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)

    speedup: dict = {}
    peak_fraction: dict = {}
    achieved: dict = {}
    for name in args.inputs:
        a, c = ips[name]["fastai_plain"], ips[name]["compiled"]
        speedup[name] = {bs: round(c[bs] / a[bs], 2) for bs in c if bs in a}
        achieved[name] = {bs: round(3 * flops[name] * rate / 1e12, 2) for bs, rate in c.items()}
        peak_fraction[name] = {bs: (round(tf / peak, 4) if peak else None) for bs, tf in achieved[name].items()}

    print(
        f"\ndevice: {label}; bf16 peak: {peak if peak else 'unknown'} TFLOP/s; steps timed: {args.steps} "
        f"after {args.warmup} warm-up"
    )
    header = "| input | batch | (a) fastai plain | (b) eager | (c) compiled | (c)/(a) | (c) TFLOP/s | peak fraction |"
    print(header + "\n|---|---|---|---|---|---|---|---|")
    for name in args.inputs:
        for bs in map(str, args.batch_sizes):
            cell = lambda v: f"{ips[name][v][bs]:.0f}" if bs in ips[name][v] else "-"  # noqa: E731
            sp = speedup[name].get(bs)
            pf = peak_fraction[name].get(bs)
            tf = achieved[name].get(bs)
            print(
                f"| {name} | {bs} | {cell('fastai_plain')} | {cell('eager')} | {cell('compiled')} | "
                f"{f'{sp:.1f}x' if sp else '-'} | {tf if tf is not None else '-'} | "
                f"{f'{pf:.1%}' if pf is not None else '-'} |"
            )
    full = not args.quick and device.type == "cuda"
    meets = bool(speedup) and all(v >= TARGET_SPEEDUP for s in speedup.values() for v in s.values())
    if speedup and any(speedup.values()):
        print(
            f"target (c) >= {TARGET_SPEEDUP:g}x (a): {'met' if meets else 'NOT met'}"
            + ("" if full else " (not a GPU measurement: smoke run only)")
        )

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")
    out = args.out or RESULTS / f"train_speed-{slug}{'-quick' if args.quick else ''}.json"
    write_result(
        out,
        {
            "device": label,
            "images_per_second": ips,
            "speedup_c_over_a": speedup,
            "peak_fraction": peak_fraction,
            "achieved_tflops_c": achieved,
            "bf16_peak_tflops": peak,
            "forward_gflops_per_image": {k: round(v / 1e9, 4) for k, v in flops.items()},
            "train_flops_factor": 3,
            "variants": {
                "fastai_plain": "(a) PNG files, fastai per-item DataLoader (pad 4 + random crop + flip "
                "per item), default Learner (fastai Adam, float32)",
                "eager": "(b) dmlbench RunTrainer: uint8 on device, per-batch device augmentation, "
                "bf16 autocast, channels_last, fused AdamW, no per-step host sync",
                "compiled": "(c) (b) + torch.compile of the backbone's training step",
            },
            "details": details,
            "batch_sizes": args.batch_sizes,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "compile_options": compile_options,
            "quick": args.quick,
            "target_speedup": TARGET_SPEEDUP,
            "meets_target": meets if full else None,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
