"""The three results the findings got wrong for some valid configs (issue 29), each pinned by a test
that fails on the code before it: methods found by head, not by label (claim 3: a SphereFace
variant; claim 6: a second Conventional entry, and a sweep counted as several methods), and
whether each run trained with mixup (a PML loss does not, whatever `annex.mixup` says).

The tests use only what the findings module had before (``findings``, ``findings_tests``,
``mixup_runs``), so they run, and fail for these reasons, on the old code too. Ten cases of one
anomaly class: exact sign-flip p of ten values of one sign = 2 / 1024.
"""

from pathlib import Path

import pandas as pd
import pytest

from dmlbench.config import load_config
from dmlbench.report.findings import CLASS_DISTANCES_COLUMNS, METRICS_COLUMNS, findings, findings_tests, mixup_runs

ROOT = Path(__file__).resolve().parents[3]
N = 10


def rows_of(values_by_method, scorer="cosine_k1", n_per_class="all"):
    return pd.DataFrame(
        [
            dict(
                dataset="d",
                n_anomaly=1,
                method=method,
                n_per_class=n_per_class,
                seed=0,
                case=case,
                scorer=scorer,
                metric="auroc",
                value=value,
            )
            for method, values in values_by_method.items()
            for case, value in enumerate(values)
        ],
        columns=METRICS_COLUMNS,
    )


def no_distances():
    return pd.DataFrame(columns=CLASS_DISTANCES_COLUMNS)


def claim(metrics, number, **kw):
    return findings(metrics, no_distances(), **kw).set_index("number").loc[number]


def found_tests(metrics, number, **kw):
    t = findings_tests(metrics, no_distances(), **kw)
    return t[t["number"] == number].reset_index(drop=True)


BELOW = [0.4 - 0.001 * k for k in range(N)]  # SphereFace with Euclidean distance below chance in every case


def test_a_sphereface_sweep_is_sphereface():
    """Before: "not testable: No AUROC rows for sphereface" for a config that sweeps SphereFace's margin."""
    metrics = rows_of({"sphereface_margin2": BELOW, "sphereface_margin4": BELOW}, scorer="euclidean_k1")
    r, t = claim(metrics, 3), found_tests(metrics, 3)
    assert r["verdict"] == "supported"
    assert t["comparison"].tolist() == ["AUROC − 0.5, sphereface_margin2", "AUROC − 0.5, sphereface_margin4"]
    assert t["p_value"].tolist() == pytest.approx([2 / 2**N] * 2)


def test_a_sphereface_entry_under_another_label_is_found_by_its_head():
    methods = {"sphere_m3": {"head": "sphereface", "margin": 3}}
    metrics = rows_of({"sphere_m3": BELOW}, scorer="euclidean_k1")
    assert claim(metrics, 3, methods=methods)["verdict"] == "supported"


def test_a_second_conventional_entry_is_baseline_not_metric_learning():
    """Before: `conv_wide − conventional` was tested as "metric learning beats Conventional"."""
    methods = {
        "conventional": {"head": "conventional"},
        "conv_wide": {"head": "conventional"},
        "arcface": {"head": "arcface"},
    }
    metrics = rows_of(
        {"conventional": [0.7] * N, "conv_wide": [0.7] * N, "arcface": [0.8 + 0.001 * k for k in range(N)]},
        n_per_class="10",
    )
    t = found_tests(metrics, 6, methods=methods)
    assert t["comparison"].tolist() == ["arcface − conventional"]
    assert t["effect"].iloc[0] == pytest.approx(0.1045)
    assert "conventional = mean of conventional, conv_wide" in claim(metrics, 6, methods=methods)["evidence"]


def test_a_sweep_is_one_method():
    """Before: three ArcFace margins were three tests of "metric learning", and three methods in claim 1."""
    metrics = rows_of(
        {
            "conventional": [0.7] * N,
            "arcface_margin0.2": [0.9] * N,
            "arcface_margin0.35": [0.7] * N,
            "arcface_margin0.5": [0.7] * N,
        },
        n_per_class="10",
    )
    t = found_tests(metrics, 6)
    assert t["comparison"].tolist() == ["arcface − conventional"]
    assert t["effect"].iloc[0] == pytest.approx(0.2 / 3)  # the margins averaged per case
    two = pd.concat([metrics.assign(n_per_class="all"), metrics.assign(n_per_class="all", dataset="e")])
    assert found_tests(two, 1)["comparison"].tolist() == ["conventional − arcface"] * 2


def test_mixup_comes_from_each_runs_spec():
    """The demo: `annex.mixup: true`, and supcon a pytorch-metric-learning loss, which trains without
    mixup. Before: "Mixup was on for every method", and supcon − conventional compared no-mixup with mixup
    without saying so."""
    config = load_config(ROOT / "config" / "demo.yaml")
    mix = mixup_runs(config)
    assert mix[("supcon", "10")] is False and mix[("supcon", "30")] is False
    assert all(on for (label, _), on in mix.items() if label != "supcon")
    metrics = rows_of(
        {"conventional": [0.7] * N, "supcon": [0.8] * N, "cosface": [0.8] * N},
        n_per_class="10",
    )
    evidence = claim(metrics, 6, mixup=mix)["evidence"]
    assert "Mixup was on for every method but supcon at 10." in evidence
    assert "mixup is part of the difference: supcon at 10: supcon without mixup, conventional with mixup" in evidence


def test_mixup_of_a_methods_own_setting_and_the_annex_override():
    config = load_config(ROOT / "config" / "demo.yaml")
    config = load_config(
        {
            **{k: v for k, v in config.items() if k not in ("annex", "n_per_class", "methods")},
            "n_per_class": ["all", 30],
            "methods": {"conventional": {}, "arcface": {"mixup": True}},
            "annex": {**config["annex"], "sample_size": [10], "mixup": False},
        }
    )
    # 30 is a main-grid size: the method's own mixup; 10 is annex A.2's: annex.mixup overrides it
    assert mixup_runs(config) == {
        ("conventional", "30"): False,
        ("conventional", "10"): False,
        ("arcface", "30"): True,
        ("arcface", "10"): False,
    }
