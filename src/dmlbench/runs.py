"""Reading the train stage's contracts and scoring them (the score stage)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DmlbenchError
from .scoring import knn_scores

#: results/scores/{dataset}/a{n}/{method}/n{N}/s{seed}.parquet, also runs/ and benchmarks/ paths.
KEY_PATTERN = re.compile(r"(?P<dataset>[^/]+)/a(?P<n_anomaly>\d+)/(?P<method>[^/]+)/n(?P<n_per_class>[^/]+)/s(?P<seed>\d+)")


def keys_from_path(path: str | Path) -> dict:
    """The condition keys encoded in a run, score or benchmark path."""
    m = KEY_PATTERN.search(Path(path).as_posix())
    if not m:
        raise DmlbenchError(f"{path}: not a dmlbench run path (expected .../{{dataset}}/a{{n}}/{{method}}/n{{N}}/s{{seed}})")
    return {"dataset": m["dataset"], "n_anomaly": int(m["n_anomaly"]), "method": m["method"],
            "n_per_class": m["n_per_class"], "seed": int(m["seed"])}


def load_run(run_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """run.json and the arrays of embeddings.npz of a finished train job."""
    run_dir = Path(run_dir)
    meta_path, emb_path = run_dir / "run.json", run_dir / "embeddings.npz"
    for p in (meta_path, emb_path):
        if not p.exists():
            raise DmlbenchError(f"{p} is missing: the train job of {run_dir} did not finish; rerun `dmlbench train` for it")
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(emb_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (json.JSONDecodeError, zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DmlbenchError(f"{run_dir}: run.json or embeddings.npz is corrupt ({exc}); delete the folder and retrain") from None
    return meta, arrays


def score_run(run_dir: str | Path, spec: dict) -> pd.DataFrame:
    """One row per (case, test image): label, is_anomaly, head prediction, one column per scorer,
    and per distance the train-split index of the nearest reference image."""
    meta, arrays = load_run(run_dir)
    classes = np.asarray(meta["classes"])
    labels = arrays["test_labels"]
    frames = []
    for info in meta["cases"]:
        k = info["case"]
        normals = arrays[f"case{k}_normal_classes"]
        ref_index = arrays[f"case{k}_reference_index"]
        scores = knn_scores(arrays[f"case{k}_test"], arrays[f"case{k}_reference"],
                            distances=spec["distances"], ks=spec["k"])
        frame = {
            "case": np.full(len(labels), k, dtype=np.int64),
            "test_index": np.arange(len(labels), dtype=np.int64),
            "label": labels.astype(np.int64),
            "class_name": classes[labels],
            "is_anomaly": ~np.isin(labels, normals),
            "head_pred": normals[arrays[f"case{k}_test_logits"].argmax(axis=1)].astype(np.int64),
        }
        # score columns first, then the nearest-reference indices
        for name, values in sorted(scores.items(), key=lambda kv: kv[0].endswith("_nn")):
            frame[name] = ref_index[values] if name.endswith("_nn") else values.astype(np.float32)
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def scorer_columns(scores: pd.DataFrame) -> list[str]:
    """The anomaly-score columns of a scores table (everything that is not a key or an index)."""
    fixed = {"case", "test_index", "label", "class_name", "is_anomaly", "head_pred"}
    return [c for c in scores.columns if c not in fixed and not c.endswith("_nn")]
