"""The Summary's lines from tables made by hand: the best method per condition and the methods
within its interval, each claim's verdict, and the reproduction's verdict, each linking to its
section."""

import pandas as pd

from dmlbench.report import summary
from dmlbench.report._style import SUMMARY_COLUMNS


def summary_rows(rows):
    return pd.DataFrame(
        [
            dict(
                dataset=ds,
                n_anomaly=na,
                method=m,
                n_per_class="all",
                scorer="cosine_k1",
                metric="auroc",
                mean=mean,
                std=0.01,
                n=5,
                n_cases=5,
                ci_low=lo,
                ci_high=hi,
            )
            for ds, na, m, mean, lo, hi in rows
        ],
        columns=SUMMARY_COLUMNS,
    )


def test_the_best_method_and_the_methods_within_its_interval():
    table = summary_rows(
        [
            ("d", 1, "conventional", 0.70, 0.60, 0.80),
            ("d", 1, "arcface", 0.80, 0.75, 0.85),  # best; conventional 0.70 lies below 0.75
            ("d", 1, "cosface", 0.78, 0.70, 0.86),  # within [0.75, 0.85]
            ("d", 5, "conventional", 0.90, 0.88, 0.92),  # best at a5; arcface 0.85 and cosface 0.80 not within
            ("d", 5, "arcface", 0.85, 0.80, 0.90),
            ("d", 5, "cosface", 0.80, 0.70, 0.90),
        ]
    )
    best = summary.best_methods(table, "cosine_k1", "all")
    assert best[["method", "n_within", "within"]].values.tolist() == [
        ["arcface", 1, "cosface"],
        ["conventional", 0, ""],
    ]
    lines = summary.best_lines(best, "cosine_k1", "all")
    assert lines == [
        "- Best in d · 1 anomaly class: **arcface**, AUROC 0.800 [0.750, 0.850] (cosine_k1, all training images); "
        "1 of the 2 other methods lie within its interval (cosface). [AUROC per condition](#sec-auroc)",
        "- Best in d · 5 anomaly classes: **conventional**, AUROC 0.900 [0.880, 0.920] (cosine_k1, all training "
        "images); 0 of the 2 other methods lie within its interval. [AUROC per condition](#sec-auroc)",
    ]


def test_each_claim_in_one_line():
    claims = pd.DataFrame(
        {
            "number": [1, 3],
            "claim": ["No method is best everywhere.", "SphereFace falls below 0.5."],
            "verdict": ["not significant", "supported"],
        }
    )
    assert summary.claim_lines(claims) == [
        "- Claim 1: No method is best everywhere. **not significant**. [Findings](#sec-findings)",
        "- Claim 3: SphereFace falls below 0.5. **supported**. [Findings](#sec-findings)",
    ]


def test_the_reproduction_verdict_counts_cells_and_orders():
    cells = pd.DataFrame({"verdict": ["agrees", "agrees", "higher", "lower", "not comparable"]})
    order = pd.DataFrame(
        {"n_methods": [4, 3, 1], "spearman": [-0.8, 0.5, float("nan")], "order": ["differs", "agrees", "agrees"]}
    )
    assert summary.reproduction_line(cells, order, None) == (
        "- Reproduction: 2 of 4 compared cells agree with the published values (1 higher, 1 lower; 1 not "
        "comparable, a bound only); the method order agrees in 1 of 2 cells (Spearman -0.80 to +0.50). "
        "[Reproduction](#sec-reproduction)"
    )
    assert summary.reproduction_line(None, None, "no cell of this run matches; `config/study.yaml` would") == (
        "- Reproduction: no cell of this run matches; `config/study.yaml` would. [Reproduction](#sec-reproduction)"
    )
