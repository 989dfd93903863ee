"""The report's text stays true for every config: rendered without Quarto (tests/helpers/qmd.py)
for two configs, no section states a number or property that its tables or figures contradict.

- ``a``: config/test.yaml's run (the session's ``test_run``: all training images, scorer
  cosine_k1, annex A.2 at 20 images per class, closed-set models).
- ``b``: derived from it: ``n_per_class: [20]``, the report scorer ``msp`` (not a kNN distance,
  and no normalised distances), one seed, two conditions, no annex A.2 and no closed-set models;
  without test.yaml's pair loss (a report on MSP needs logits from every method: the config
  check refuses it otherwise).

Each test reads what a section says (the prose with its inline values, the printed tables) and
checks it against the parquet tables, the figures' Vega-Lite specs (``usermeta``: what each
figure was built from) and the config snapshot.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dmlbench.config import load_config
from dmlbench.report.findings import findings, mixup_runs
from dmlbench.report.study import knn_parts, main_n_per_class
from tests.helpers.qmd import rendered_markdown, run_cells
from tests.workflow.conftest import ROOT, snakemake

REPORT = ROOT / "report" / "report.qmd"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_b(tmp_path_factory) -> Path:
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config.update(
        conditions=[{"dataset": "digits", "n_anomaly": [1, 3]}],
        n_per_class=[20],
        seeds=[0],
        annex={"sample_size": []},
        tsne={"enabled": False},
        report={"scorer": "msp"},
        methods={k: v for k, v in config["methods"].items() if v.get("head") != "pml"},
    )
    workdir = tmp_path_factory.mktemp("prose_b")
    (workdir / "b.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, "--configfile", str(workdir / "b.yaml"), "--cores", "2")
    return workdir / "results"


@dataclass
class Page:
    """One config's rendered report: its text by section, its printed tables, and what it was made from."""

    results: Path
    config: dict
    scorer: str
    sections: dict[str, str]  # heading -> prose with inline values (printed tables and figures removed)
    printed: dict[str, str]  # table label -> its printed HTML table

    @property
    def n(self) -> str:
        return main_n_per_class(self.config)

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.results / "tables" / f"{name}.parquet")

    def meta(self, label: str) -> dict:
        spec = json.loads((self.results / "figures" / f"{label}.vl.json").read_text())
        return spec["usermeta"]["dmlbench"]

    def auroc(self) -> pd.DataFrame:
        m = self.table("metrics")
        return m[(m["metric"] == "auroc") & (m["n_per_class"].astype(str) == self.n)]

    def says(self, section: str, pattern: str) -> re.Match:
        """The match of ``pattern`` (whitespace-insensitive) in a section; fails naming the section."""
        text = " ".join(self.sections[section].split())
        match = re.search(pattern, text)
        assert match, f"section {section!r} does not say {pattern!r}:\n{text}"
        return match


def _page(results: Path) -> Page:
    config = load_config(results / "config.yaml")
    scorer = config["report"]["scorer"]
    ns = run_cells(REPORT, {"results": str(results), "scorer": scorer}, cwd=REPORT.parent)
    text = rendered_markdown(REPORT, ns)
    printed = {m[1]: m[2] for m in re.finditer(r"::: \{#(tbl-[\w-]+)\}\n+```\{=html\}\n(.*?)\n```", text, re.S)}
    prose = re.sub(r"```\{=(html|typst)\}\n.*?\n```\n", "", text, flags=re.S)
    prose = re.sub(r"```yaml\n.*?\n```\n", "", prose, flags=re.S)  # the config printout
    parts = re.split(r"^## (.+?)(?: \{.*\})?$", prose, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2]))
    return Page(results, config, scorer, sections, printed)


@pytest.fixture(scope="module", params=["a", "b"])
def page(request) -> Page:
    results = (
        request.getfixturevalue("test_run") / "results" if request.param == "a" else request.getfixturevalue("run_b")
    )
    return _page(results)


def _cells(printed_html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", printed_html, re.S)
    return [[html.unescape(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)] for r in rows]


# --------------------------------------------------------------------------- what the runs were


def test_the_configs_differ_as_intended(page):
    if page.config["report"]["scorer"] == "msp":
        assert page.n == "20" and page.config["seeds"] == [0] and knn_parts(page.scorer) is None
    else:
        assert page.n == "all" and page.scorer == "cosine_k1"


def test_images_per_class_and_scorer_named_are_those_of_the_figures(page):
    stated = {
        m[0]
        for m in re.findall(
            r"((all|\d+) training images) per normal class", " ".join(" ".join(page.sections.values()).split())
        )
    }
    expected = "all training images" if page.n == "all" else f"{page.n} training images"
    assert stated == {expected}
    assert page.says("Setup", r"main figures show the scorer (\S+)\.")[1] == page.scorer
    assert page.says("AUROC per condition", r"scored with (\S+)\.")[1] == page.scorer
    for label in ("fig-auroc-box", "fig-auroc-overview", "fig-critical-difference"):
        assert (page.meta(label)["scorer"], page.meta(label)["n_per_class"]) == (page.scorer, page.n), label
    assert page.says("Ranking", r"by the AUROC of (\S+) \(1 = best\)")[1] == page.scorer


def test_distances_are_those_of_a_distance_scorer(page):
    shown, report = page.says("Normalised distances", r"Here it shows (\S+) \(the report's scorer is (\S+)\)").groups()
    assert report == page.scorer and page.meta("fig-normalised-distance")["scorer"] == shown
    cd = page.table("class_distances")
    rows = cd[(cd["scorer"] == shown) & (cd["n_per_class"].astype(str) == page.n)]
    assert len(rows) and np.isfinite(rows["normalised"]).all()
    report_rows = cd[cd["scorer"] == page.scorer]
    # The fallback is taken exactly when the report's scorer has no normalised distance.
    assert (shown != page.scorer) == (not np.isfinite(report_rows["normalised"]).any())
    auroc, distance = page.says(
        "Balance of normal and anomaly classes",
        r"mean AUROC \((\S+)\) and the mean normalised distance of the anomaly classes "
        r"\((\S+)\)",
    ).groups()
    assert (auroc, distance) == (page.scorer, shown)
    assert page.meta("fig-balance")["distance_scorer"] == distance


def test_k_stated_is_the_k_of_the_figures_and_tables(page):
    k = page.says("Cosine vs Euclidean", r"both distances at k = (\S+) ")[1]
    assert page.meta("fig-cosine-euclidean")["k"] == k
    assert {f"cosine_k{k}", f"euclidean_k{k}"} <= set(page.auroc()["scorer"])
    assert page.says("Scorers compared", r"\(here at k = (\S+)\)")[1] == page.meta("fig-scorers")["k"] == k
    ks = page.says("Annex A.1: the k of the k-nearest mean", r"against k \(([^)]*)\)")[1].split(", ")
    in_tables = {p[1] for s in page.auroc()["scorer"].unique() if (p := knn_parts(s))}
    assert set(ks) == in_tables


def test_scorers_listed_are_those_in_the_tables(page):
    listed = page.says("Scorers compared", r"This run computed (.+?) \(`scoring.scorers`\)")[1].split(", ")
    others = {s for s in page.auroc()["scorer"].unique() if knn_parts(s) is None and s != "head"}
    assert others <= set(listed) and set(listed) == set(page.config["scoring"]["scorers"])
    assert (
        set(page.meta("fig-scorers")["scorers"])
        - {f"cosine_k{page.meta('fig-scorers')['k']}", f"euclidean_k{page.meta('fig-scorers')['k']}"}
        == others
    )


def test_worst_misses_describe_the_run_shown(page):
    case, seed, dataset, n_anomaly, images, scorer = page.says(
        "Worst misses",
        r"case (\d+) and seed (\d+) of (\S+) with n_anomaly = (\d+), trained on (.+?) per normal "
        r"class .* nearest-neighbour distance (\S+) \(k = 1\)",
    ).groups()
    meta = page.meta("fig-worst-misses")
    assert (int(case), int(seed), dataset, int(n_anomaly), scorer) == (
        meta["case"],
        meta["seed"],
        meta["dataset"],
        meta["n_anomaly"],
        meta["scorer"],
    )
    assert images == (
        "all training images" if meta["n_per_class"] == "all" else f"{meta['n_per_class']} training images"
    )
    assert scorer.endswith("_k1")
    wm = page.table("worst_misses")
    shown = wm[
        (wm["case"] == int(case))
        & (wm["seed"] == int(seed))
        & (wm["dataset"] == dataset)
        & (wm["n_anomaly"] == int(n_anomaly))
        & (wm["n_per_class"].astype(str) == meta["n_per_class"])
    ]
    assert set(shown["scorer"]) >= {scorer} and len(shown[shown["scorer"] == scorer])


def test_embeddings_and_annexes_say_whether_they_ran(page):
    embeddings = page.sections["Embeddings"]
    enabled = page.says("Embeddings", r"`tsne.enabled` \(here (\w+)\)")[1]
    assert enabled == str(page.config["tsne"]["enabled"]).lower()
    if page.config["tsne"]["enabled"]:
        closed = page.table("closed_set")
        first = int(page.says("Embeddings", r"the first seed \((\d+)\)")[1])
        assert set(closed["seed"]) == {first}
        points = int(page.says("Embeddings", r"a stratified sample of (\d+) test images")[1])
        assert page.table("tsne").groupby(["dataset", "method", "seed"]).size().max() <= points
        assert "not in this run" not in embeddings
    else:
        assert embeddings.count("Not in this run") == 2
    sizes = page.says("Annex A.2: images per class", r"\(`annex.sample_size`: (.+?)\), with")[1]
    changes = page.says("Annex A.2: images per class", r"`annex.training` changes (.+?); the reproducibility")[1]
    if page.config["annex"]["sample_size"]:
        assert sizes.split(", ") == [str(s) for s in page.config["annex"]["sample_size"]]
        runs = page.table("runs")
        for dataset, epochs, main in re.findall(r"(\w+): epochs (\d+) \(main runs (\d+)\)", changes):
            by_size = runs[runs["dataset"] == dataset].groupby(runs["n_per_class"].astype(str))["epochs"].unique()
            assert [int(e) for e in by_size[str(page.config["annex"]["sample_size"][0])]] == [int(epochs)]
            assert [int(e) for e in by_size[page.n]] == [int(main)]
        assert "epochs" in changes or "epochs" not in page.config["annex"]["training"]
    else:
        assert sizes == "empty, not run" and changes == "none"
        assert page.sections["Annex A.2: images per class"].count("Not in this run") == 2


def test_reproducibility_counts_match_the_tables(page):
    m = page.table("metrics")
    seeds = page.says("Reproducibility", r"Seeds: ([\d, ]+);")[1].split(", ")
    assert [int(s) for s in seeds] == sorted(m["seed"].unique())
    cases = int(page.says("Reproducibility", r"cases per condition: (\d+)\.")[1])
    assert (m.groupby(["dataset", "n_anomaly"])["case"].nunique() == cases).all()


def test_no_sentence_the_code_contradicts(page):
    text = " ".join(" ".join(page.sections.values()).split())
    for phrase in (
        "official test split",
        "every comparison is paired",
        "sit near 1",
        "every parameter of a head",
        "trained properly",
        "give identical tables",
    ):
        assert phrase not in text, phrase
    if any(d["source"] == "digits" for d in page.config["datasets"].values()):
        assert "for scikit-learn's digits, which have no split, a seeded draw" in text


def test_findings_printed_are_the_tables_verdicts(page):
    metrics, distances = page.table("metrics"), page.table("class_distances")
    expected = findings(
        metrics,
        distances,
        scorer=page.scorer,
        n_per_class=page.n,
        mixup=mixup_runs(page.config),
        methods=page.config["methods"],
    )
    cells = _cells(page.printed["tbl-findings"])
    assert cells[0] == ["#", "claim", "verdict", "evidence"]
    assert [row[2] for row in cells[1:]] == expected["verdict"].tolist()
    assert [row[3] for row in cells[1:]] == expected["evidence"].tolist()
    csv = pd.read_csv(page.results / "tables" / "tbl-findings.csv")
    assert csv["verdict"].tolist() == expected["verdict"].tolist()
    # what the section says the claims use is what they used
    images = page.says("Findings", r"Claims 1–5 use the models trained on (.+?) per normal class")[1]
    assert images == ("all training images" if page.n == "all" else f"{page.n} training images")
    assert page.says("Findings", r"the report's scorer (\S+) where the claim")[1] == page.scorer
    present = set(metrics["scorer"])
    for row in expected.itertuples():
        assert (row.n_tests == 0) == (row.verdict == "not testable"), row.id
        if row.n_tests:  # a tested claim names scorers of the tables (an untested one: those it lacks)
            assert set(row.scorer.split(", ")) <= present, row.id
        if row.number < 6:
            assert row.n_per_class == page.n, row.id


def test_cosine_claim_recomputed_from_the_metrics(page):
    """Claim 2 by hand from metrics.parquet: per condition the cosine − Euclidean AUROC of each
    (method, seed, case), averaged per case and over each head's variants, then over the heads (the
    mean over methods); a sign-flip p over the cases (2 cases of one sign: 2 / 4); cases that share
    anomaly classes (a3 over 10 classes) make the test exploratory, the others Holm-adjusted."""
    from dmlbench.config.methods import family
    from dmlbench.stats import case_design, holm, signflip_p

    k = knn_parts(page.scorer)[1] if knn_parts(page.scorer) else "1"
    a = page.auroc()
    wide = a.pivot_table(index=["dataset", "n_anomaly", "method", "seed", "case"], columns="scorer", values="value")
    diff = (
        (wide[f"cosine_k{k}"] - wide[f"euclidean_k{k}"])
        .groupby(level=["dataset", "n_anomaly", "case", "method"])
        .mean()
    )
    heads = diff.groupby(
        [diff.index.get_level_values(n) for n in ("dataset", "n_anomaly", "case")]
        + [[family(m, page.config["methods"]) for m in diff.index.get_level_values("method")]]
    ).mean()
    mean_over_methods = heads.groupby(level=[0, 1, 2]).mean()
    tests = pd.read_csv(page.results / "tables" / "tbl-findings-tests.csv")
    mine = tests[(tests["number"] == 2) & tests["comparison"].str.endswith("mean over methods")].reset_index(drop=True)
    for i, ((dataset, n_anomaly), blocks) in enumerate(mean_over_methods.groupby(level=[0, 1])):
        row = mine.iloc[i]
        assert row["condition"] == f"{dataset} a{n_anomaly}" and row["n_cases"] == len(blocks)
        assert row["effect"] == pytest.approx(blocks.mean())
        assert row["p_value"] == pytest.approx(signflip_p(blocks.to_numpy()))
        exploratory = case_design(blocks.index.get_level_values(2), n_anomaly, 10).exploratory
        assert (row["outcome"] == "exploratory") == exploratory
    all_claim2 = tests[tests["number"] == 2]
    valid = all_claim2[all_claim2["outcome"] != "exploratory"]
    assert valid["p_holm"].tolist() == pytest.approx(holm(valid["p_value"]).tolist())
    assert all_claim2[all_claim2["outcome"] == "exploratory"]["p_holm"].isna().all()
