"""Closed-set models (n_anomaly = 0, every class normal): t-SNE coordinates and test accuracy.

The report's embeddings section shows, per dataset and method, a t-SNE map of test embeddings
from a model trained on all classes, and the closed-set test accuracy of that model (how well
each method learned the classes with the shared recipe: one model and seed per method). Both tables come from the runs'
``embeddings.npz`` (one case, ``case0_*``), written by ``dmlbench train`` with n_anomaly 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE

from dmlbench.embeddings_file import case_key
from dmlbench.errors import DmlbenchError
from dmlbench.layout import keys_from_path

TSNE_COLUMNS = ["dataset", "method", "seed", "test_index", "label", "class_name", "x", "y"]
CLOSED_SET_COLUMNS = ["dataset", "method", "seed", "n_test", "accuracy", "epochs"]


def _load(run_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    keys = keys_from_path(run_dir / "embeddings.npz")
    if keys["n_anomaly"] != 0:
        raise DmlbenchError(f"{run_dir} is not a closed-set run (n_anomaly {keys['n_anomaly']}, expected a0)")
    try:
        with np.load(run_dir / "embeddings.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("test_labels", "classes", case_key(0, "test"), case_key(0, "normal_classes"))}
            if case_key(0, "test_logits") in npz.files:  # a pair or tuple loss has no logits
                arrays[case_key(0, "test_logits")] = npz[case_key(0, "test_logits")]
    except (OSError, KeyError, ValueError) as exc:
        raise DmlbenchError(
            f"{run_dir}/embeddings.npz is missing or damaged ({exc}); delete the run folder and rerun `dmlbench train`"
        ) from None
    return keys, arrays


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of exactly ``n`` items, each class in proportion to its size (largest
    remainders get the rounding; seeded); all items when n >= len(labels)."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = n * counts / len(labels)
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: n - take.sum()]] += 1
    picked = [rng.choice(np.flatnonzero(labels == c), size=t, replace=False) for c, t in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def tsne_coordinates(embeddings: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """2-D t-SNE (scikit-learn, PCA initialisation, cosine metric) of L2-normalised embeddings."""
    x = embeddings.astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perplexity = min(float(perplexity), (len(x) - 1) / 3)
    return TSNE(
        n_components=2, perplexity=perplexity, init="pca", metric="cosine", random_state=seed, n_jobs=1
    ).fit_transform(x)


def closed_set_tables(
    run_dirs: list[str | Path],
    points: int = 2000,
    perplexity: float = 30.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tsne, closed_set) tables from closed-set run folders (columns: TSNE_COLUMNS, CLOSED_SET_COLUMNS).

    Accuracy is over the whole test split: the head's arg-max class against the label (NaN for a
    head without logits: a pair or tuple loss predicts no class). t-SNE uses a stratified sample of
    ``points`` test images, seeded by the run's seed.
    """
    tsne_parts, rows = [], []
    for run_dir in sorted(map(Path, run_dirs)):
        keys, a = _load(run_dir)
        classes = [str(c) for c in a["classes"]]
        labels = a["test_labels"].astype(np.int64)
        if case_key(0, "test_logits") in a:
            predicted = a[case_key(0, "normal_classes")][a[case_key(0, "test_logits")].argmax(axis=1)]
            accuracy = float((predicted == labels).mean())
        else:
            accuracy = float("nan")
        run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
        rows.append(
            {
                "dataset": keys["dataset"],
                "method": keys["method"],
                "seed": keys["seed"],
                "n_test": len(labels),
                "accuracy": accuracy,
                "epochs": int(run.get("spec", {}).get("training", {}).get("epochs", -1)),
            }
        )
        idx = stratified_sample(labels, points, keys["seed"])
        xy = tsne_coordinates(a[case_key(0, "test")][idx], perplexity, keys["seed"])
        tsne_parts.append(
            pd.DataFrame(
                {
                    "dataset": keys["dataset"],
                    "method": keys["method"],
                    "seed": keys["seed"],
                    "test_index": idx,
                    "label": labels[idx],
                    "class_name": [classes[c] for c in labels[idx]],
                    "x": xy[:, 0],
                    "y": xy[:, 1],
                }
            )
        )
    tsne = pd.concat(tsne_parts, ignore_index=True) if tsne_parts else pd.DataFrame(columns=TSNE_COLUMNS)
    tsne = tsne[TSNE_COLUMNS].astype(
        {
            "dataset": "str",
            "method": "str",
            "seed": "int64",
            "test_index": "int64",
            "label": "int64",
            "class_name": "str",
            "x": "float64",
            "y": "float64",
        }
    )
    closed = pd.DataFrame(rows, columns=CLOSED_SET_COLUMNS).astype(
        {
            "dataset": "str",
            "method": "str",
            "seed": "int64",
            "n_test": "int64",
            "accuracy": "float64",
            "epochs": "int64",
        }
    )
    return (
        tsne.sort_values(["dataset", "method", "seed", "test_index"], kind="mergesort").reset_index(drop=True),
        closed.sort_values(["dataset", "method", "seed"], kind="mergesort").reset_index(drop=True),
    )
