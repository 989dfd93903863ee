"""The original implementation's ``unpaired_subsample`` (docs/original.md): each method scored on a
random half of the test images against a random half of its reference set.

The original drew both halves afresh for every method and case (utils.py, ``ToyAnomalyDetection.test``
calling ``prepare_subset_ds_dl(..., size=0.5)``: per class folder, ``int(0.5 * n)`` files by
``random.sample``), so two methods were never scored on the same images. Here the draw is
seeded by (run seed, case, method label): unpaired across methods, as the original, but the same
on every rerun.
"""

from __future__ import annotations

import zlib

import numpy as np

from dmlbench.embeddings_file import case_key

#: the share of each class kept, as the original's test_size=0.5
FRACTION = 0.5
#: the per-case arrays a subsample cuts: test rows, then reference rows
TEST_KEYS = ("test", "test_logits")
REFERENCE_KEYS = ("reference", "reference_index", "reference_labels")


def subsample_rng(seed: int, case: int, method: str) -> np.random.Generator:
    """The stream of one (seed, case, method label); crc32 gives the label a stable number."""
    return np.random.default_rng([int(seed), int(case), zlib.crc32(method.encode())])


def half_per_class(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of ``int(0.5 * n_c)`` rows of each class ``c`` of ``labels`` (the
    original's per-folder ``int(len(candidates) * size)``); a class of one row keeps none."""
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=int(FRACTION * np.sum(labels == c)), replace=False)
        for c in np.unique(labels)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64) if picked else np.zeros(0, dtype=np.int64)


def unpaired_subsample(
    arrays: dict[str, np.ndarray], case: int, seed: int, method: str
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Case ``case``'s arrays cut to a random half of each test class and of each reference class
    (its reference labels; the reference taken as one class when a run has none), and the
    positions of the test images kept (their ``test_index``)."""
    rng = subsample_rng(seed, case, method)
    test_rows = half_per_class(arrays["test_labels"], rng)
    ref_key = case_key(case, "reference_labels")
    n_ref = len(arrays[case_key(case, "reference")])
    ref_labels = arrays[ref_key] if ref_key in arrays else np.zeros(n_ref, dtype=np.int64)
    ref_rows = half_per_class(ref_labels, rng)
    out = dict(arrays)
    for name, rows in [(n, test_rows) for n in TEST_KEYS] + [(n, ref_rows) for n in REFERENCE_KEYS]:
        key = case_key(case, name)
        if key in arrays:
            out[key] = arrays[key][rows]
    return out, test_rows
