"""The Reproduction section on reference and result tables made by hand: every verdict, the rank
correlation and the order flips worked out on paper, the settings table, what the switches
change, and which configs match a published cell."""

import math

import pandas as pd
import pytest
from scipy import stats as sst

from dmlbench.config import validate
from dmlbench.config.references import REFERENCE_COLUMNS
from dmlbench.report import reproduction as repro
from dmlbench.report.findings import CLASS_DISTANCES_COLUMNS, METRICS_COLUMNS

NAN = float("nan")


def refs(rows, reference="paper", statistic="mean_auroc", n_per_class="100"):
    """Reference rows of cifar10 a8, cosine k1: (method, value, upper_bound, tolerance)."""
    return pd.DataFrame(
        [
            {
                "reference": reference,
                "dataset": "cifar10",
                "n_anomaly": 8,
                "n_per_class": n_per_class,
                "distance": "cosine",
                "k": "1",
                "method": method,
                "statistic": statistic,
                "value": value,
                "upper_bound": bound,
                "tolerance": tol,
                "source": "by hand",
            }
            for method, value, bound, tol in rows
        ],
        columns=["reference", *REFERENCE_COLUMNS],
    )


def metrics(values_by_method, dataset="cifar10", n_anomaly=8, n_per_class="100", scorer="cosine_k1"):
    return pd.DataFrame(
        [
            dict(
                dataset=dataset,
                n_anomaly=n_anomaly,
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


OURS = {
    "conventional": [0.60, 0.62, 0.64],  # mean 0.62, t-interval 0.62 +- 4.303 * 0.02 / sqrt 3
    "l2softmax": [0.705, 0.705, 0.705],  # no spread: the interval is the point 0.705
    "arcface": [0.80, 0.81, 0.82],
    "cosface": [0.40, 0.41, 0.42],
    "sphereface": [0.30, 0.30, 0.30],
}
PUBLISHED = [
    ("conventional", 0.60, NAN, 0.001),  # in our interval [0.570, 0.670], 0.02 off: agrees by interval
    ("l2softmax", 0.70, NAN, 0.01),  # outside the point interval, 0.005 off: agrees by tolerance
    ("arcface", 0.50, NAN, 0.01),  # ours 0.81: higher
    ("cosface", 0.90, NAN, 0.01),  # ours 0.41: lower
    ("sphereface", NAN, 0.40, 0.01),  # a bound only: not comparable
    ("mean_of_methods", 0.569, NAN, 0.0),  # per case (0.561, 0.569, 0.577): mean 0.569
]


def test_every_verdict_by_hand():
    cells = repro.comparison_table(refs(PUBLISHED), metrics(OURS)).set_index("label")
    half = sst.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)
    conv = cells.loc["conventional"]
    assert (conv["ours"], conv["ci_low"], conv["ci_high"]) == pytest.approx((0.62, 0.62 - half, 0.62 + half))
    assert (conv["verdict"], conv["basis"]) == ("agrees", "our interval")
    assert (cells.loc["l2softmax", "verdict"], cells.loc["l2softmax", "basis"]) == ("agrees", "tolerance")
    assert cells.loc["l2softmax", "difference"] == pytest.approx(0.005)
    assert cells.loc["arcface", "verdict"] == "higher" and cells.loc["arcface", "difference"] == pytest.approx(0.31)
    assert cells.loc["cosface", "verdict"] == "lower" and cells.loc["cosface", "difference"] == pytest.approx(-0.49)
    assert cells.loc["sphereface", "verdict"] == "not comparable" and cells.loc["sphereface", "upper_bound"] == 0.4
    mean = cells.loc["mean of 5 heads"]
    assert mean["ours"] == pytest.approx(0.569) and mean["verdict"] == "agrees"
    assert mean["basis"] == "interval and tolerance" and mean["n_cases"] == 3


def test_the_verdict_rule_itself():
    assert repro.verdict(0.5, 0.52, 0.49, 0.55, 0.0) == ("agrees", "our interval")
    assert repro.verdict(0.5, 0.505, NAN, NAN, 0.01) == ("agrees", "tolerance")  # one case: no interval
    assert repro.verdict(0.5, 0.52, 0.51, 0.53, 0.01) == ("higher", "")
    assert repro.verdict(0.5, 0.48, 0.47, 0.49, 0.01) == ("lower", "")
    assert repro.verdict(NAN, 0.3, 0.2, 0.4, 0.01) == ("not comparable", "a bound only")


def test_a_median_reference_is_set_against_our_median_and_its_order_statistic_interval():
    ours = metrics({"arcface": [0.70 + 0.01 * k for k in range(10)]})  # median 0.745; x(2) = 0.71, x(9) = 0.78
    (cell,) = repro.comparison_table(refs([("arcface", 0.715, NAN, 0.01)], statistic="median_auroc"), ours).itertuples()
    assert (cell.ours, cell.ci_low, cell.ci_high) == pytest.approx((0.745, 0.71, 0.78))
    assert (cell.verdict, cell.basis) == ("agrees", "our interval")  # 0.03 off: beyond the tolerance


def test_spearman_and_the_flipped_pairs_by_hand():
    (row,) = repro.order_table(refs(PUBLISHED), metrics(OURS)).itertuples()
    # published ranks arcface 1, conventional 2, l2softmax 3, cosface 4; ours cosface 1, conventional 2,
    # l2softmax 3, arcface 4: sum d^2 = 9 + 0 + 0 + 9 = 18, rho = 1 - 6 * 18 / (4 * 15) = -0.8
    assert row.n_methods == 4 and row.spearman == pytest.approx(-0.8)
    # every pair flips beyond both tolerances but l2softmax over conventional (the same order here)
    assert row.n_flips == 5 and row.order == "differs"
    assert "cosface above arcface published (0.900 vs 0.500), below here (-0.400 [-0.400, -0.400])" in row.flips
    assert "l2softmax above conventional" not in row.flips


def test_a_flip_within_the_published_tolerance_is_no_flip():
    ours = metrics({"conventional": [0.71] * 3, "l2softmax": [0.81] * 3, "arcface": [0.51] * 3})
    close = refs([("conventional", 0.80, NAN, 0.01), ("l2softmax", 0.79, NAN, 0.01), ("arcface", 0.60, NAN, 0.01)])
    (row,) = repro.order_table(close, ours).itertuples()
    # published ranks arcface 1, l2softmax 2, conventional 3; ours arcface 1, conventional 2, l2softmax 3:
    # sum d^2 = 2, rho = 1 - 6 * 2 / (3 * 8) = 0.5. Conventional and L2 swap, but 0.01 <= 0.01 + 0.01.
    assert row.spearman == pytest.approx(0.5) and (row.n_flips, row.order, row.flips) == (0, "agrees", "none")
    apart = refs([("conventional", 0.80, NAN, 0.01), ("l2softmax", 0.70, NAN, 0.01), ("arcface", 0.60, NAN, 0.01)])
    (row,) = repro.order_table(apart, ours).itertuples()
    assert row.spearman == pytest.approx(0.5) and (row.n_flips, row.order) == (1, "differs")
    assert row.flips == "conventional above l2softmax published (0.800 vs 0.700), below here (-0.100 [-0.100, -0.100])"


def test_a_switch_variant_is_compared_but_ranked_by_its_plain_partner():
    methods = {
        "conventional": {"head": "conventional"},
        "arcface": {"head": "arcface", "scale": 30},
        "arcface_orig": {"head": "arcface", "scale": 30, "untrained_weights": True},
    }
    ours = metrics({"conventional": [0.6] * 3, "arcface": [0.7] * 3, "arcface_orig": [0.5] * 3})
    published = refs([("conventional", 0.6, NAN, 0.01), ("arcface", 0.505, NAN, 0.01)])
    cells = repro.comparison_table(published, ours, methods).set_index("label")
    assert cells.loc["arcface_orig", "switches"] == "untrained_weights" and cells.loc["arcface", "switches"] == "none"
    assert (cells.loc["arcface", "verdict"], cells.loc["arcface_orig", "verdict"]) == ("higher", "agrees")
    (row,) = repro.order_table(published, ours, methods).itertuples()
    assert row.n_methods == 2 and math.isnan(row.spearman)  # 2 heads: no rank correlation
    # arcface ranked at its plain 0.7 (above conventional: a flip), not at arcface_orig's 0.5
    assert row.flips == "conventional above arcface published (0.600 vs 0.505), below here (-0.100 [-0.100, -0.100])"


def test_switch_pairs_and_what_they_change():
    methods = {
        "sphereface": {"head": "sphereface", "margin": 4},
        "sphereface_orig": {"head": "sphereface", "margin": 4, "untrained_weights": True},
        "sphereface_m3": {"head": "sphereface", "margin": 3, "untrained_weights": True},  # no plain partner
    }
    assert repro.switch_pairs(methods) == [("sphereface", "sphereface_orig", ["untrained_weights"])]
    assert repro.needs_pairs({"methods": {"arcface": {"head": "arcface"}}}).startswith("this run holds no method")
    n = 10
    euc = metrics(
        {"sphereface": [0.6 + 0.001 * k for k in range(n)], "sphereface_orig": [0.4 - 0.001 * k for k in range(n)]},
        dataset="d",
        n_anomaly=1,
        n_per_class="all",
        scorer="euclidean_k1",
    )
    cos = metrics({"sphereface": [0.7] * n, "sphereface_orig": [0.7] * n}, dataset="d", n_anomaly=1, n_per_class="all")
    short = metrics(
        {"sphereface": [0.7, 0.71, 0.72], "sphereface_orig": [0.6, 0.62, 0.61]},
        dataset="e",
        n_anomaly=1,
        n_per_class="all",
        scorer="euclidean_k1",
    )
    table = pd.concat([euc, cos, short], ignore_index=True)
    fixes = repro.fixes_table(table, methods, "euclidean_k1", "all").set_index("dataset")
    # d: orig - plain = -0.2 - 0.002 k in all 10 cases: sign-flip p = 2 / 2^10; Holm over 2 tests doubles it
    assert fixes.loc["d", "effect"] == pytest.approx(-0.209) and fixes.loc["d", "p_value"] == pytest.approx(2 / 1024)
    assert fixes.loc["d", "p_holm"] == pytest.approx(4 / 1024) and fixes.loc["d", "outcome"] == "lower"
    # e: 3 cases can give no p below 2 / 8 = 0.25
    assert fixes.loc["e", "p_value"] == pytest.approx(0.25) and fixes.loc["e", "outcome"] == "not significant"
    moved_full = repro.claims_moved(
        pd.concat([euc, cos], ignore_index=True),
        pd.DataFrame(columns=CLASS_DISTANCES_COLUMNS),
        methods,
        "cosine_k1",
        "all",
    ).set_index("number")
    # claim 3 (SphereFace with Euclidean distance below chance): 0.6 fixed, 0.4 with the switch
    assert (moved_full.loc[3, "verdict_fixed"], moved_full.loc[3, "verdict_switched"]) == ("contradicted", "supported")
    assert moved_full[moved_full["moved"]].index.tolist() == [3]
    text = repro.claims_text(moved_full.reset_index())
    assert (
        text
        == "- `untrained_weights` (sphereface_orig in place of the fixed method): moves claim 3 (contradicted → supported)."
    )


def _study_like(**extra):
    return validate(
        {
            "datasets": {"cifar10": {"source": "cifar10", "root": "data/cifar10"}},
            "conditions": [{"dataset": "cifar10", "n_anomaly": [8]}],
            "methods": {"arcface": {}, "conventional": {}},
            **extra,
        }
    )


def test_which_configs_match_a_published_cell():
    demo = validate(
        {"datasets": {"digits": {"source": "digits"}}, "conditions": [{"dataset": "digits", "n_anomaly": [3]}]}
    )
    why = repro.needs_match(demo)
    assert why == (
        "no cell of this run (dataset digits) matches a published value (datasets cifar10, mnist); "
        "`config/study.yaml` runs the study's own grid"
    )
    cfg = _study_like()
    rows = repro.matching_rows(cfg)  # a8, all images, cosine and euclidean at k1: the box-plot medians
    assert repro.needs_match(cfg) is None
    assert sorted(set(zip(rows["method"], rows["distance"]))) == [
        ("arcface", "cosine"),
        ("arcface", "euclidean"),
        ("conventional", "cosine"),
        ("conventional", "euclidean"),
    ]
    annex = repro.matching_rows(_study_like(annex={"sample_size": [100]}))
    assert {"100"} == set(annex["n_per_class"]) - {"all"} and "mean_of_methods" in set(annex["method"])


def test_the_settings_table_names_each_difference():
    cfg = _study_like(
        model={"backbone": "resnet18", "pretrained": True, "embedding": "linear_bn", "input_size": 64},
        training={"epochs": 5, "freeze_epochs": 1},
    )
    table = repro.settings_table(cfg).set_index("setting")
    assert table.loc["backbone"].tolist() == ["resnet18", "resnet18", "no"]
    assert table.loc["pretrained (ImageNet)"].tolist() == ["yes", "yes", "no"]
    assert table.loc["embedding layer"].tolist() == ["fastai", "linear_bn", "yes"]
    assert table.loc["input size (px)"].tolist() == ["not stated", "64", "unknown"]
    assert table.loc["epochs", "this_run"] == "1 frozen + 5"
    assert table.loc["cases"].tolist() == ["10", "10", "no"]
    assert table.loc["switch untrained_weights"].tolist() == ["on", "off", "yes"]
    # `cases: all` is the rotations it resolves to: 10 on a 10-class dataset, as the study's 10
    cfg["cases"] = "all"
    assert repro.settings_table(cfg).set_index("setting").loc["cases"].tolist() == ["10", "10", "no"]
    cfg["cases"] = 10
    cfg["methods"]["arcface_orig"] = dict(cfg["methods"]["arcface"], untrained_weights=True)
    table = repro.settings_table(cfg).set_index("setting")
    assert table.loc["switch untrained_weights"].tolist() == ["on", "on for arcface_orig", "partly"]


def test_config_study_yaml_matches_every_published_cell_of_the_study():
    from pathlib import Path

    from dmlbench.config import load_config

    root = Path(__file__).resolve().parents[3]
    cfg = load_config(root / "config" / "study.yaml")
    study = repro.reference_frame(cfg)
    assert len(repro.matching_rows(cfg)) == len(study) == 56  # A.1's N = 100 and k = 10 included
