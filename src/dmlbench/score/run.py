"""Scoring one run: its embeddings.npz and run.json read (the train stage's contract), every test
image scored against the case's reference set by every scorer the run can compute.

embeddings.npz keys are named through dmlbench.embeddings_file, which the writer uses too.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from dmlbench.config.scorers import (
    DEFAULT_KNN_K,
    DEFAULT_LOF_NEIGHBORS,
    DEFAULT_SHRINKAGE,
    LOGIT_SCORERS,
    SCORERS,
)
from dmlbench.embeddings_file import case_key
from dmlbench.errors import DmlbenchError
from dmlbench.score.knn import knn_scores
from dmlbench.score.scorers import (
    ScorerUnavailable,
    energy_scores,
    knn_normalised_scores,
    lof_scores,
    mahalanobis_scores,
    maxlogit_scores,
    msp_scores,
)
from dmlbench.score.subsample import unpaired_subsample

log = logging.getLogger(__name__)


def load_run(run_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """run.json and the arrays of embeddings.npz of a finished train job."""
    run_dir = Path(run_dir)
    meta_path, emb_path = run_dir / "run.json", run_dir / "embeddings.npz"
    for p in (meta_path, emb_path):
        if not p.exists():
            raise DmlbenchError(
                f"{p} is missing: the train job of {run_dir} did not finish; rerun `dmlbench train` for it"
            )
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(emb_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (json.JSONDecodeError, zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DmlbenchError(
            f"{run_dir}: run.json or embeddings.npz is corrupt ({exc}); delete the folder and retrain"
        ) from None
    return meta, arrays


def _available_scorers(meta: dict, arrays: dict[str, np.ndarray], spec: dict) -> list[str]:
    """The scorers of ``spec["scorers"]`` (default: all of :data:`SCORERS`) that every case of the
    run can compute; each one left out is logged as a warning. Decided per run, so that every
    case has the same score columns."""
    wanted = spec.get("scorers", list(SCORERS))
    unknown = [s for s in wanted if s not in SCORERS]
    if unknown:
        raise DmlbenchError(f"unknown scorer(s) {unknown}: choose from {', '.join(SCORERS)}")
    cases = [info["case"] for info in meta["cases"]]
    out = []
    for name in SCORERS:
        if name not in wanted:
            continue
        if name in LOGIT_SCORERS and not has_logits(arrays, cases):
            # a pair or tuple loss has no logits: the score is not applicable, not skipped for a fault
            log.info("%s scorer not applicable: the head gives no logits (a pair or tuple loss)", name)
            continue
        if name == "mahalanobis":
            missing = [k for k in cases if case_key(k, "reference_labels") not in arrays]
            if missing:
                log.warning(
                    "mahalanobis scorer skipped: embeddings.npz has no case{k}_reference_labels "
                    "(written by newer versions of `dmlbench train`; retrain to get it)"
                )
                continue
        if name == "lof":
            n_neighbors = spec.get("lof_neighbors", DEFAULT_LOF_NEIGHBORS)
            smallest = min(len(arrays[case_key(k, "reference")]) for k in cases)
            if smallest <= n_neighbors:
                log.warning(
                    "lof scorer skipped: a case has only %d reference images, LOF needs more than n_neighbors=%d",
                    smallest,
                    n_neighbors,
                )
                continue
        if name == "knn_normalised":
            k = spec.get("knn_normalised_k", DEFAULT_KNN_K)
            smallest = min(len(arrays[f"case{c}_reference"]) for c in cases)
            if smallest < k:
                log.warning(
                    "knn_normalised scorer skipped: a case has only %d reference images, fewer than "
                    "knn_normalised_k=%d",
                    smallest,
                    k,
                )
                continue
        out.append(name)
    return out


def has_logits(arrays: dict[str, np.ndarray], cases: list[int]) -> bool:
    """Did the train stage write head logits for every case? A head without logits (a pair or
    tuple loss) writes none."""
    return all(case_key(k, "test_logits") in arrays for k in cases)


def extra_scores(name: str, arrays: dict[str, np.ndarray], k: int, spec: dict) -> np.ndarray:
    """Scores of the scorer ``name`` (one of :data:`SCORERS`) for case ``k`` of a run's arrays."""
    if name == "mahalanobis":
        return mahalanobis_scores(
            arrays[case_key(k, "test")],
            arrays[case_key(k, "reference")],
            arrays[case_key(k, "reference_labels")],
            shrinkage=spec.get("mahalanobis_shrinkage", DEFAULT_SHRINKAGE),
        )
    if name == "msp":
        return msp_scores(arrays[case_key(k, "test_logits")])
    if name == "maxlogit":
        return maxlogit_scores(arrays[case_key(k, "test_logits")])
    if name == "energy":
        return energy_scores(arrays[case_key(k, "test_logits")])
    if name == "knn_normalised":
        return knn_normalised_scores(
            arrays[case_key(k, "test")], arrays[case_key(k, "reference")], k=spec.get("knn_normalised_k", DEFAULT_KNN_K)
        )
    if name == "lof":
        return lof_scores(
            arrays[case_key(k, "test")],
            arrays[case_key(k, "reference")],
            n_neighbors=spec.get("lof_neighbors", DEFAULT_LOF_NEIGHBORS),
        )
    raise DmlbenchError(f"unknown scorer {name!r}")


def score_run(run_dir: str | Path, spec: dict, run: tuple[dict, dict[str, np.ndarray]] | None = None) -> pd.DataFrame:
    """One row per (case, test image): label, is_anomaly, head prediction (when the head has
    logits), one column per scorer, and per distance the train-split index of the nearest
    reference image.

    Score columns: the kNN distances of ``spec["distances"]`` x ``spec["k"]``, then the scorers of
    ``spec.get("scorers")`` (default all of :data:`dmlbench.config.scorers.SCORERS`, in that order) that
    the run can compute: ``mahalanobis`` needs ``case{k}_reference_labels`` in embeddings.npz,
    ``lof`` more than ``spec.get("lof_neighbors", 20)`` reference images, ``knn_normalised`` at least
    ``spec.get("knn_normalised_k", 50)``; others are skipped with a warning. ``msp``, ``maxlogit``
    and ``energy`` need the head's logits: a run without them (a pair or tuple loss) has neither
    these columns nor ``head_pred``. Then the ``{distance}_nn`` columns. ``run``: the run as
    :func:`load_run` returned it, when the caller has read it already.

    A run whose method has the switch ``unpaired_subsample`` (run.json's spec) is scored on a
    random half of each test class against a random half of each reference class, drawn per
    (seed, case, method label) (dmlbench.score.subsample): its rows are those test images only.
    """
    meta, run_arrays = run if run is not None else load_run(run_dir)
    classes = np.asarray(meta["classes"])
    all_labels = run_arrays["test_labels"]
    run_spec = meta.get("spec", {})
    unpaired = bool(run_spec.get("method_params", {}).get("unpaired_subsample"))
    frames = []
    if unpaired:  # the switch: each case's arrays cut to its own random halves, before any check
        cut = {
            info["case"]: unpaired_subsample(run_arrays, info["case"], run_spec["seed"], run_spec["method"])
            for info in meta["cases"]
        }
    arrays = run_arrays
    if unpaired:
        arrays = dict(run_arrays)
        for k, (case_arrays, _) in cut.items():
            arrays.update({key: v for key, v in case_arrays.items() if key.startswith(f"case{k}_")})
    extra = _available_scorers(meta, arrays, spec)
    logits = has_logits(arrays, [info["case"] for info in meta["cases"]])
    for info in meta["cases"]:
        k = info["case"]
        test_index = cut[k][1] if unpaired else np.arange(len(all_labels), dtype=np.int64)
        labels = all_labels[test_index]
        normals = arrays[case_key(k, "normal_classes")]
        ref_index = arrays[case_key(k, "reference_index")]
        scores = knn_scores(
            arrays[case_key(k, "test")], arrays[case_key(k, "reference")], distances=spec["distances"], ks=spec["k"]
        )
        frame = {
            "case": np.full(len(labels), k, dtype=np.int64),
            "test_index": test_index,
            "label": labels.astype(np.int64),
            "class_name": classes[labels],
            "is_anomaly": ~np.isin(labels, normals),
        }
        if logits:
            frame["head_pred"] = normals[arrays[case_key(k, "test_logits")].argmax(axis=1)].astype(np.int64)
        # score columns first (kNN, then the other scorers), then the nearest-reference indices
        for name, values in scores.items():
            if not name.endswith("_nn"):
                frame[name] = values.astype(np.float32)
        for name in extra:
            try:
                frame[name] = extra_scores(name, arrays, k, spec).astype(np.float32)
            except ScorerUnavailable as exc:  # checked per run above; kept as a clear message
                raise DmlbenchError(f"case {k}: {exc}") from None
        for name, values in scores.items():
            if name.endswith("_nn"):
                frame[name] = ref_index[values]
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)
