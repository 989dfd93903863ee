"""The train stage's embeddings.npz: its keys, dtypes and shapes, in one place (the
train stage writes it, the score and aggregate stages read it).

The writer (dmlbench.train.run) packs its arrays with :func:`pack_job` and :func:`pack_case`;
the readers (dmlbench.score.run, dmlbench.aggregate.closed_set) name them with :func:`case_key`, so both
sides spell every key the same way.

One file per run (results/runs/{dataset}/a{n}/{method}/n{N}/s{seed}/embeddings.npz):

====================================  ==========================  ===============================
key                                   dtype, shape                meaning
====================================  ==========================  ===============================
``test_labels``                       int64 [n_test]              class of every test image
``classes``                           str [C]                     class names, dataset order
``case{k}_reference``                 float16 [n_ref, D]          reference set: embeddings of the
                                                                  case's training images
``case{k}_reference_index``           int64 [n_ref]               their rows in the train split
``case{k}_reference_labels``          int64 [n_ref]               their classes
``case{k}_test``                      float16 [n_test, D]         embeddings of every test image
``case{k}_test_logits``               float32 [n_test, n_normal]  head logits; column j is normal
                                                                  class ``case{k}_normal_classes[j]``
``case{k}_normal_classes``            int64 [n_normal]            the case's normal classes
====================================  ==========================  ===============================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The per-case arrays, in the order they are written.
CASE_ARRAYS = ("reference", "reference_index", "reference_labels", "test", "test_logits", "normal_classes")


def case_key(case: int, name: str) -> str:
    """The embeddings.npz key of array ``name`` (one of :data:`CASE_ARRAYS`) of case ``case``."""
    if name not in CASE_ARRAYS:
        raise ValueError(f"embeddings.npz has no per-case array {name!r}; known: {', '.join(CASE_ARRAYS)}")
    return f"case{case}_{name}"


def pack_job(test_labels: np.ndarray, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """The job-wide arrays: test labels [n_test] as int64, class names [C]."""
    return {"test_labels": np.asarray(test_labels).astype(np.int64), "classes": np.asarray(classes)}


def pack_case(
    case: int,
    *,
    reference: np.ndarray,
    reference_index: np.ndarray,
    reference_labels: np.ndarray,
    test: np.ndarray,
    test_logits: np.ndarray | None,
    normal_classes: Sequence[int],
) -> dict[str, np.ndarray]:
    """Case ``case``'s arrays under their keys, in the stored dtypes: embeddings [n, D] as float16,
    logits [n_test, n_normal] as float32 (absent when None: a pair or tuple loss has no logits, and
    no logit-based scores), indices and classes as int64."""
    arrays = {
        "reference": reference.astype(np.float16),
        "reference_index": reference_index.astype(np.int64),
        "reference_labels": reference_labels.astype(np.int64),
        "test": test.astype(np.float16),
        "test_logits": None if test_logits is None else test_logits.astype(np.float32),
        "normal_classes": np.asarray(normal_classes, dtype=np.int64),
    }
    return {case_key(case, name): arrays[name] for name in CASE_ARRAYS if arrays[name] is not None}
