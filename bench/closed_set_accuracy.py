"""Closed-set test accuracy of each method trained on all classes of a dataset.

Evidence that every head trains for real: the same backbone and recipe per method, trained
on every class of the official train split (no anomaly classes), evaluated on the official
test split. Prints a table and writes bench/results/closed_set_accuracy-<dataset>-<device>.json.

    python -m bench.closed_set_accuracy --source fashion_mnist --backbone small_cnn --epochs 3
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import write_result
from dmlbench.data.sources import load_source
from dmlbench.heads import HEADS, PARAMS
from dmlbench.train.device import resolve_device
from dmlbench.train.run import train_job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="fashion_mnist")
    ap.add_argument("--root", help="dataset root (default: the reader's)")
    ap.add_argument("--backbone", default="small_cnn", choices=["small_cnn", "resnet18"])
    ap.add_argument("--embedding-dim", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--methods", nargs="*", default=list(HEADS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    spec_ds = {"source": args.source, **({"root": args.root} if args.root else {})}
    ds = load_source(spec_ds)
    device = resolve_device(args.device)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu-{args.threads}threads"
    rows = []
    for method in args.methods:
        spec = {
            "dataset": args.source,
            "source": args.source,
            "class_order": "canonical",
            "flip": args.source in ("cifar10", "folder"),
            "n_anomaly": 0,
            "method": method,
            "method_params": {**PARAMS[method], "mixup": False, "mixup_alpha": 0.4},
            "n_per_class": "all",
            "seed": args.seed,
            "cases": 1,
            "model": {"backbone": args.backbone, "embedding_dim": args.embedding_dim},
            "training": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "weight_decay": 0.01,
                "val_fraction": 0.05,
                "crop_padding": 2,
            },
        }
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_job(ds, spec, tmp, device=args.device, threads=args.threads)
            seconds = time.perf_counter() - t0
            with np.load(Path(tmp) / "embeddings.npz") as npz:
                pred = npz["case0_normal_classes"][npz["case0_test_logits"].argmax(1)]
        acc = float((pred == ds.y_test).mean())
        rows.append({"method": method, "accuracy": acc, "seconds": seconds})
        print(f"{method:13s} accuracy {acc:.4f}  ({seconds:.0f} s)", flush=True)

    result = {
        "dataset": args.source,
        "device": label,
        "backbone": args.backbone,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "n_train": int(len(ds.y_train)),
        "n_test": int(len(ds.y_test)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "results": rows,
    }
    out = Path(__file__).parent / "results" / f"closed_set_accuracy-{args.source}-{label.replace(' ', '_')}.json"
    write_result(out, result)
    print("\n| method | closed-set accuracy | seconds |\n|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['accuracy']:.4f} | {r['seconds']:.0f} |")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
