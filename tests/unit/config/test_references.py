"""The study's published numbers (package data) and the `references:` config key."""

import math
from pathlib import Path

import pandas as pd
import pytest

from dmlbench.config import validate
from dmlbench.config.references import (
    REFERENCE_COLUMNS,
    reference_rows,
    study_file,
    study_metadata,
)
from dmlbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = {"datasets": {"digits": {"source": "digits"}}, "conditions": [{"dataset": "digits", "n_anomaly": [3]}]}
ROW = "cifar10,8,100,cosine,1,arcface,mean_auroc,0.7,,0.01,my paper's table 2\n"


def test_the_study_csv_keeps_its_provenance_and_tolerance_columns():
    header = study_file().read_text().splitlines()[0].split(",")
    assert tuple(header) == REFERENCE_COLUMNS
    rows = reference_rows()
    assert len(rows) == 56 and all(r["reference"] == "study" and r["source"] for r in rows)
    bounds = [r for r in rows if math.isnan(r["value"])]
    # SphereFace with Euclidean distance on CIFAR-10 a1 and a8: below the plot's axis, a bound only
    assert [(r["method"], r["n_anomaly"], r["upper_bound"]) for r in bounds] == [
        ("sphereface", 1, 0.4),
        ("sphereface", 8, 0.4),
    ]


def test_the_annex_a1_means_average_to_the_articles_0_619962():
    rows = [r for r in reference_rows() if r["statistic"] == "mean_auroc" and r["n_per_class"] == "100"]
    per_method = [r for r in rows if r["k"] == "1" and r["method"] != "mean_of_methods"]
    assert sorted(r["method"] for r in per_method) == sorted(
        ["conventional", "l2softmax", "arcface", "cosface", "sphereface", "centerloss"]
    )
    # 0.588 + 0.622 + 0.656 + 0.654 + 0.624 + 0.576 = 3.720; / 6 = 0.620000, the table's 3 decimals
    mean = sum(r["value"] for r in per_method) / 6
    assert mean == pytest.approx(0.62, abs=1e-12)
    # ... within the table's rounding (each value +-0.0005) of the article's 0.619962
    assert abs(mean - 0.619962) <= max(r["tolerance"] for r in per_method)
    (quoted,) = [r for r in rows if r["k"] == "1" and r["method"] == "mean_of_methods"]
    assert quoted["value"] == 0.619962


def test_the_study_metadata_names_its_setting_and_the_matching_config():
    meta = study_metadata()
    assert meta["matching_config"] == "config/study.yaml" and (ROOT / meta["matching_config"]).is_file()
    assert meta["setting"]["backbone"] == "resnet18" and meta["setting"]["pretrained"] is True
    assert meta["setting"]["embedding"] == "fastai" and meta["setting"]["cases"] == 10
    assert len(meta["conditions"]) == 8


def test_a_reference_csv_is_read_and_its_path_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "paper.csv").write_text(",".join(REFERENCE_COLUMNS) + "\n" + ROW)
    monkeypatch.chdir(tmp_path)
    cfg = validate(MINIMAL | {"references": ["paper.csv"]})
    assert cfg["references"] == [str(tmp_path / "paper.csv")]
    extra = [r for r in reference_rows(cfg) if r["reference"] == "paper"]
    assert extra == [
        {
            "reference": "paper",
            "dataset": "cifar10",
            "n_anomaly": 8,
            "n_per_class": "100",
            "distance": "cosine",
            "k": "1",
            "method": "arcface",
            "statistic": "mean_auroc",
            "value": 0.7,
            "upper_bound": extra[0]["upper_bound"],
            "tolerance": 0.01,
            "source": "my paper's table 2",
        }
    ]
    assert math.isnan(extra[0]["upper_bound"])
    assert validate(MINIMAL)["references"] == []


def test_an_earlier_runs_summary_table_is_a_reference(tmp_path):
    tables = tmp_path / "old" / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame(
        {
            "dataset": ["digits", "digits"],
            "n_anomaly": [3, 3],
            "method": ["arcface", "arcface"],
            "n_per_class": ["all", "all"],
            "scorer": ["cosine_k5", "msp"],
            "metric": ["auroc", "auroc"],
            "mean": [0.8, 0.7],
            "std": [0.1, 0.1],
            "n": [4, 4],
            "n_cases": [4, 4],
            "ci_low": [0.76, 0.6],
            "ci_high": [0.86, 0.8],
        }
    ).to_parquet(tables / "summary.parquet")
    cfg = validate(MINIMAL | {"references": [str(tables / "summary.parquet")]})
    (row,) = [r for r in reference_rows(cfg) if r["reference"] != "study"]  # msp is no kNN distance: left out
    assert (row["reference"], row["distance"], row["k"], row["value"]) == ("run old", "cosine", "5", 0.8)
    assert row["tolerance"] == pytest.approx(0.05)  # half the interval's width


def test_a_missing_reference_file_names_the_key_and_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"references\.0 \(nowhere\.csv\): file .*nowhere\.csv not found"):
        validate(MINIMAL | {"references": ["nowhere.csv"]})


def test_a_reference_without_the_columns_names_the_missing_ones(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,n_anomaly,method,value\ncifar10,8,arcface,0.7\n")
    with pytest.raises(ConfigError) as err:
        validate(MINIMAL | {"references": [str(bad)]})
    text = str(err.value)
    assert f"references.0 ({bad})" in text and "lacks the columns n_per_class, distance, k, statistic" in text
    assert "tolerance, source of a reference table" in text and "scorer, metric, mean" in text


def test_a_reference_row_with_an_unknown_statistic_names_its_line(tmp_path):
    bad = tmp_path / "paper.csv"
    bad.write_text(",".join(REFERENCE_COLUMNS) + "\n" + ROW.replace("mean_auroc", "auc"))
    cfg = validate(MINIMAL | {"references": [str(bad)]})
    with pytest.raises(ConfigError, match=r"references\.0 .*line 2: statistic 'auc' is not one of"):
        reference_rows(cfg)
