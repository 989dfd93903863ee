"""Section 12, Findings: the study's claims tested on this run's tables, each with a verdict, the
tests behind it and a sentence of evidence. Pure functions of ``metrics`` and ``class_distances``
(docs/tables.md); ``findings`` gives one row per claim (``tbl-findings``), ``findings_tests`` one
row per test (``tbl-findings-tests``).

How every claim is tested
-------------------------
*Blocks.* The unit of a test is the **case**: a paired difference is taken where both sides saw
the same model inputs (same dataset, case, seed and, as each claim says, method or class), then
averaged over seeds (and methods or classes) within the case. Seeds of one case share its
anomaly classes, so they are repeated measures, not independent blocks.

*Test.* A two-sided one-sample t-test of the per-case values against 0 (claim 3: against 0.5),
``stats.mean_test``, with the 95 % t-interval of their mean as the effect's confidence interval.
A rank test would be the alternative, but with five cases (the demo) no exact signed-rank or
sign-flip test can reach p < 0.05 (its smallest two-sided p is 2 / 2^5 = 0.0625); the t-test on
case means, each an average over seeds and methods, can. A test needs at least 2 cases.

*Multiple tests.* Each claim is tested per condition (dataset, n_anomaly) - and per images per
class where the claim is about it - and its p-values are Holm-adjusted across all of that
claim's tests (``stats.holm``). A test **supports** the claim when its Holm p < 0.05 and the
effect has the claimed sign, **contradicts** it when Holm p < 0.05 with the other sign, and is
**not significant** otherwise.

*Verdict* of a claim from its tests: **supported** (every test supports), **contradicted** (every
test contradicts), **not significant** (none is significant), **mixed** (anything else; the
evidence names the conditions each way), **not testable** (no test could be made; the evidence
says what is missing). Claim 1 has its own reading of the same tests (below).

*What is tested.* Claims 1-5 use the main images per class of the run (``n_per_class``:
"all" when run, else the largest main-grid size) and the report's ``scorer`` where the claim is
about it; a claim about distances falls back to the kNN columns when the scorer is not one
(the evidence says which scorer was used and why). Claim 6 uses every numeric images-per-class
value in the tables.

The claims
----------
1. ``no-method-best-everywhere`` - "No method is best everywhere." Per condition the *top*
   method (highest mean AUROC of ``scorer`` over the cases with every method; ties: study order)
   is compared with each other method (paired t-test of top − other over cases). A method is
   *beaten* in a condition when the top method is significantly better than it; it is *best*
   there when it is the top method and beats every other one. **Supported**: every method is
   beaten in some condition. **Contradicted**: one method is best in every condition.
   **Not significant**: no method is beaten anywhere. **Mixed**: otherwise (some methods are
   never beaten and could still be best everywhere; they are named). Needs 2 conditions.
2. ``cosine-beats-euclidean`` - "Cosine distance beats Euclidean distance." Per condition,
   ``cosine_k{k}`` − ``euclidean_k{k}`` AUROC of the same model (method, seed, case), averaged
   per case; k is the report scorer's (1 when the scorer is not a kNN distance). Claimed sign +.
3. ``sphereface-euclidean-below-chance`` - "SphereFace with Euclidean distance falls below AUROC
   0.5." Per condition, the AUROC of ``sphereface`` with ``euclidean_k{k}`` averaged per case,
   against 0.5. Claimed sign −.
4. ``fewer-normal-larger-distance`` - "Fewer normal classes give larger anomaly distances and a
   lower AUROC." Per dataset and pair of consecutive n_anomaly values a < b (b has fewer normal
   classes): (i) the normalised distance of the *same* anomaly class in the same case, method
   and seed at b minus at a (case k's anomaly classes at a are among those at b), claimed sign
   +; (ii) the AUROC of case k at b minus at a (same method and seed), claimed sign −.
   Scorer: the report's when it has normalised distances, else ``cosine_k1`` (or
   ``euclidean_k1``).
5. ``k10-beats-k1`` - "The mean of the 10 smallest distances beats the minimum (k = 1) by about
   +0.7 points of AUROC; the mean of all distances is about 10 % worse." With ``d`` the report
   scorer's distance (cosine when it is not a kNN distance): per condition ``d_k10`` − ``d_k1``
   (claimed sign +) and ``d_kall`` − ``d_k1`` (claimed sign −) of the same model. The verdict is
   about the signs; the evidence compares the sizes with the study's (+0.7 points; −10 %
   relative to k = 1) and says when the mean of all falls below chance.
6. ``metric-learning-beats-conventional-small-samples`` - "Metric learning beats Conventional
   with few images per class." Per condition, numeric n_per_class and method other than
   ``conventional``: method − conventional AUROC of ``scorer`` (same seed and case), claimed
   sign +. The evidence says whether mixup was on (``mixup_runs(config)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dmlbench.config import is_annex
from dmlbench.report._declare import Column, Table
from dmlbench.report._style import METRICS_COLUMNS, method_order, n_per_class_order, pd, require_columns, stats
from dmlbench.report.study import knn_parts

TITLE = "Findings"

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
MIXED = "mixed"
NOT_SIGNIFICANT = "not significant"
NOT_TESTABLE = "not testable"
VERDICTS = (SUPPORTED, CONTRADICTED, MIXED, NOT_SIGNIFICANT, NOT_TESTABLE)

# The outcome of one test.
SUPPORTS = "supports"
CONTRADICTS = "contradicts"
UNDECIDED = "not significant"
SIGNIFICANT = "significant"  # claim 1: the top method is significantly better than this one

ALPHA = 0.05
LEVEL = 0.95
CHANCE = 0.5
STUDY_K10_GAIN = 0.7  # AUROC points, k = 10 over k = 1
STUDY_KALL_LOSS = 10.0  # per cent, the mean of all distances below k = 1
BASELINE = "conventional"

FINDINGS_COLUMNS = [
    "number",
    "id",
    "claim",
    "verdict",
    "scorer",
    "n_per_class",
    "test",
    "n_tests",
    "n_supporting",
    "n_contradicting",
    "evidence",
    "rule",
]
TESTS_COLUMNS = [
    "number",
    "id",
    "dataset",
    "condition",
    "n_per_class",
    "scorer",
    "comparison",
    "effect",
    "ci_low",
    "ci_high",
    "unit",
    "n_cases",
    "statistic",
    "p_value",
    "p_holm",
    "outcome",
]
CLASS_DISTANCES_COLUMNS = [
    "dataset",
    "n_anomaly",
    "method",
    "n_per_class",
    "seed",
    "case",
    "scorer",
    "class_index",
    "role",
    "normalised",
]
T_TEST = "paired t-test over cases"


# --------------------------------------------------------------------------- helpers


def _cond(dataset, n_anomaly) -> str:
    return f"{dataset} a{int(n_anomaly)}"


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _effect(t: dict, scale: float = 1.0, fmt: str = "+.3f") -> str:
    """ "+0.021 [+0.012, +0.030]": the effect and its interval."""
    return (
        f"{format(t['effect'] * scale, fmt)} [{format(t['ci_low'] * scale, fmt)}, {format(t['ci_high'] * scale, fmt)}]"
    )


def _case_blocks(diff: pd.Series) -> pd.Series:
    """Paired differences (index with a ``case`` level) averaged per case: the test's blocks."""
    return diff.groupby(level="case").mean().sort_index()


@dataclass
class _Claim:
    """A claim being evaluated: its tests (dicts of TESTS_COLUMNS but p_holm and outcome, plus
    ``direction`` and ``label``) and notes for the evidence."""

    number: int
    id: str
    claim: str
    rule: str
    scorer: str = ""
    n_per_class: str = ""
    test: str = T_TEST
    tests: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what could not be tested

    def add(
        self,
        values: pd.Series,
        *,
        dataset: str,
        condition: str,
        n_per_class: str,
        scorer: str,
        comparison: str,
        unit: str,
        direction: int,
        label: str,
        null: float = 0.0,
    ) -> dict | None:
        """Test the per-case ``values`` (index: case) against ``null``; None (with a note) when
        fewer than 2 cases."""
        values = values.dropna()
        if len(values) < 2:
            self.notes.append(
                f"{label}: {len(values)} case{'' if len(values) == 1 else 's'} with both sides, a test needs 2"
            )
            return None
        r = stats.mean_test(values.to_numpy(), null=null, level=LEVEL)
        row = {
            "number": self.number,
            "id": self.id,
            "dataset": dataset,
            "condition": condition,
            "n_per_class": str(n_per_class),
            "scorer": scorer,
            "comparison": comparison,
            "effect": r.mean - null,
            "ci_low": r.ci_low - null,
            "ci_high": r.ci_high - null,
            "unit": unit,
            "n_cases": r.n,
            "statistic": r.statistic,
            "p_value": r.p,
            "direction": direction,
            "label": label,
        }
        self.tests.append(row)
        return row


def _finish(c: _Claim) -> None:
    """Holm across the claim's tests, then each test's outcome."""
    adjusted = stats.holm([t["p_value"] for t in c.tests])
    for t, p in zip(c.tests, adjusted):
        t["p_holm"] = float(p)
        if p >= ALPHA:
            t["outcome"] = UNDECIDED
        elif t["direction"] == 0:
            t["outcome"] = SIGNIFICANT
        else:
            t["outcome"] = SUPPORTS if np.sign(t["effect"]) == t["direction"] else CONTRADICTS


def _verdict(c: _Claim) -> str:
    outcomes = [t["outcome"] for t in c.tests]
    if not outcomes:
        return NOT_TESTABLE
    if all(o == SUPPORTS for o in outcomes):
        return SUPPORTED
    if all(o == CONTRADICTS for o in outcomes):
        return CONTRADICTED
    if all(o == UNDECIDED for o in outcomes):
        return NOT_SIGNIFICANT
    return MIXED


def _by_outcome(c: _Claim, fmt: str = "+.3f", scale: float = 1.0, effects: bool = True) -> str:
    """ "Supports: X +0.021 [+0.012, +0.030]. Contradicts: Y -0.011 [...]. Not significant: Z +0.002."
    (effects with their 95 % interval where significant; the tests table has every interval and p)."""
    parts = []
    for outcome, words in (
        (SUPPORTS, "Supports"),
        (CONTRADICTS, "Contradicts"),
        (SIGNIFICANT, "Significant"),
        (UNDECIDED, "Not significant"),
    ):
        tests = [t for t in c.tests if t["outcome"] == outcome]
        if tests:
            shown = [
                t["label"]
                + (
                    ""
                    if not effects
                    else " " + (_effect(t, scale, fmt) if outcome != UNDECIDED else format(t["effect"] * scale, fmt))
                )
                for t in tests
            ]
            parts.append(f"{words}: {'; '.join(shown)}.")
    return " ".join(parts)


def _row(c: _Claim, verdict: str, evidence: str) -> dict:
    if c.tests and c.notes:
        evidence += f" Not tested: {'; '.join(c.notes)}."
    return {
        "number": c.number,
        "id": c.id,
        "claim": c.claim,
        "verdict": verdict,
        "scorer": c.scorer,
        "n_per_class": c.n_per_class,
        "test": c.test if c.tests else "",
        "n_tests": len(c.tests),
        "n_supporting": sum(t["outcome"] == SUPPORTS for t in c.tests),
        "n_contradicting": sum(t["outcome"] == CONTRADICTS for t in c.tests),
        "evidence": evidence,
        "rule": c.rule,
    }


def _untestable(c: _Claim, why: str) -> dict:
    c.tests = []
    notes = "; ".join(c.notes)
    return _row(c, NOT_TESTABLE, why[:1].upper() + why[1:] + (f" ({notes})" if notes else "") + ".")


def _scorers_note(rows: pd.DataFrame) -> str:
    present = sorted(rows["scorer"].unique())
    return f"scorers in the tables: {', '.join(present) if present else 'none'}"


def _knn_k(scorer: str) -> tuple[str, str]:
    """k of the report scorer for the distance claims, and a note when it is not a kNN scorer."""
    parts = knn_parts(scorer)
    if parts is None:
        return "1", f"k = 1: the report's scorer {scorer} is not a kNN distance"
    return parts[1], ""


def _images(n_per_class: str) -> str:
    return "all training images" if str(n_per_class) == "all" else f"{n_per_class} images per class"


# --------------------------------------------------------------------------- 1. no method best everywhere


def _best_everywhere(auroc: pd.DataFrame, scorer: str, npc: str) -> tuple[dict, list]:
    c = _Claim(
        1,
        "no-method-best-everywhere",
        "No method is best everywhere.",
        "per condition the top method by mean AUROC against each other method (paired t-test over cases "
        "with every method, Holm across all conditions); supported if every method is significantly beaten "
        "somewhere, contradicted if one method beats every other in every condition",
        scorer,
        npc,
    )
    sub = auroc[auroc["scorer"] == scorer]
    if sub.empty:
        return _untestable(c, f"no AUROC rows for {scorer} at {_images(npc)} ({_scorers_note(auroc)})"), []
    tops, methods_of = {}, {}
    for (ds, na), grp in sub.groupby(["dataset", "n_anomaly"], sort=True):
        cond = _cond(ds, na)
        wide = grp.pivot_table(index=["seed", "case"], columns="method", values="value", aggfunc="mean")
        methods = method_order(wide.columns)
        if len(methods) < 2:
            c.notes.append(f"{cond}: one method ({methods[0]})")
            continue
        per_case = wide[methods].dropna(how="any").groupby(level="case").mean()
        means = per_case.mean()
        top = next(m for m in methods if means[m] == means.max()) if len(per_case) else methods[0]
        for m in methods:
            if m != top:
                c.add(
                    per_case[top] - per_case[m],
                    dataset=ds,
                    condition=cond,
                    n_per_class=npc,
                    scorer=scorer,
                    comparison=f"{top} − {m}",
                    unit="AUROC",
                    direction=0,
                    label=f"{cond} {top} − {m}",
                )
        if any(t["condition"] == cond for t in c.tests):
            tops[cond], methods_of[cond] = top, methods
    if len(tops) < 2:
        why = "only one condition could be tested" if tops else "no condition could be tested"
        why += "; a best method can only differ between conditions" if len(tops) == 1 else ""
        return _untestable(c, why), c.tests
    _finish(c)
    conds = list(tops)
    beaten = {
        cond: [
            t["comparison"].split(" − ")[1] for t in c.tests if t["condition"] == cond and t["outcome"] == SIGNIFICANT
        ]
        for cond in conds
    }
    methods = method_order({m for ms in methods_of.values() for m in ms})
    where_beaten = {m: [cond for cond in conds if m in beaten[cond]] for m in methods}
    best = {cond: tops[cond] for cond in conds if set(beaten[cond]) == set(methods_of[cond]) - {tops[cond]}}
    everywhere = [m for m in methods if all(best.get(cond) == m for cond in conds)]
    never = [m for m in methods if not where_beaten[m]]
    parts = []
    for cond in conds:
        b = beaten[cond]
        others = [m for m in methods_of[cond] if m != tops[cond]]
        if not b:
            parts.append(f"{cond}: top {tops[cond]}, no other method significantly worse")
        elif len(b) == len(others):
            parts.append(f"{cond}: {tops[cond]} significantly better than every other method")
        else:
            parts.append(f"{cond}: top {tops[cond]}, significantly better than {', '.join(b)} only")
    beaten_text = ", ".join(f"{m} ({', '.join(where_beaten[m])})" for m in methods if where_beaten[m])
    if everywhere:
        verdict = CONTRADICTED
        tail = f"{everywhere[0]} is significantly better than every other method in every condition."
    elif not never:
        verdict = SUPPORTED
        tail = f"Every method is significantly beaten somewhere: {beaten_text}."
    elif not any(beaten.values()):
        verdict = NOT_SIGNIFICANT
        tail = "No method is significantly worse than the top method anywhere."
    else:
        verdict = MIXED
        tail = (
            f"Never significantly beaten (each could still be best everywhere): {', '.join(never)}; "
            f"beaten: {beaten_text}."
        )
    evidence = (
        f"Top − other AUROC per condition ({scorer}, Holm over {len(c.tests)} tests): {'; '.join(parts)}. " + tail
    )
    return _row(c, verdict, evidence), c.tests


# --------------------------------------------------------------------------- 2. cosine vs euclidean


def _cosine_vs_euclidean(auroc: pd.DataFrame, scorer: str, npc: str) -> tuple[dict, list]:
    k, note = _knn_k(scorer)
    cos, euc = f"cosine_k{k}", f"euclidean_k{k}"
    c = _Claim(
        2,
        "cosine-beats-euclidean",
        "Cosine distance beats Euclidean distance.",
        f"per condition, {cos} − {euc} AUROC of the same model (method, seed, case) averaged per case; "
        "paired t-test over cases, Holm across conditions; claimed sign +",
        f"{cos}, {euc}",
        npc,
    )
    missing = [s for s in (cos, euc) if s not in set(auroc["scorer"])]
    if missing:
        return _untestable(
            c, f"no AUROC rows for {' and '.join(missing)} at {_images(npc)} ({_scorers_note(auroc)})"
        ), []
    per_method = []
    for (ds, na), grp in auroc[auroc["scorer"].isin([cos, euc])].groupby(["dataset", "n_anomaly"], sort=True):
        cond = _cond(ds, na)
        wide = grp.pivot_table(index=["method", "seed", "case"], columns="scorer", values="value", aggfunc="mean")
        if cos not in wide or euc not in wide:
            c.notes.append(f"{cond}: only one of the two distances")
            continue
        diff = (wide[cos] - wide[euc]).dropna()
        if c.add(
            _case_blocks(diff),
            dataset=ds,
            condition=cond,
            n_per_class=npc,
            scorer=f"{cos}, {euc}",
            comparison=f"{cos} − {euc}",
            unit="AUROC",
            direction=1,
            label=cond,
        ):
            by_method = diff.groupby(level="method").mean()
            per_method.append(f"{cond} {int((by_method > 0).sum())} of {len(by_method)}")
    if not c.tests:
        return _untestable(c, f"no condition has 2 cases with both {cos} and {euc}"), []
    _finish(c)
    evidence = (
        f"{cos} − {euc} AUROC, mean over methods and seeds per case"
        + (f" ({note})" if note else "")
        + ". "
        + _by_outcome(c)
        + f" Methods with cosine higher on average: {'; '.join(per_method)}."
    )

    return _row(c, _verdict(c), evidence), c.tests


# --------------------------------------------------------------------------- 3. sphereface + euclidean


def _sphereface_below_chance(auroc: pd.DataFrame, scorer: str, npc: str) -> tuple[dict, list]:
    k, note = _knn_k(scorer)
    euc = f"euclidean_k{k}"
    c = _Claim(
        3,
        "sphereface-euclidean-below-chance",
        "SphereFace with Euclidean distance falls below AUROC 0.5.",
        f"per condition, the AUROC of sphereface with {euc} averaged per case against 0.5 (one-sample t-test "
        "over cases, Holm across conditions); claimed sign −",
        euc,
        npc,
        test="one-sample t-test over cases (against 0.5)",
    )
    absent = [
        what
        for what, ok in (("sphereface", "sphereface" in set(auroc["method"])), (euc, euc in set(auroc["scorer"])))
        if not ok
    ]
    if absent:
        return _untestable(c, f"no AUROC rows for {' or '.join(absent)} at {_images(npc)}"), []
    sub = auroc[(auroc["method"] == "sphereface") & (auroc["scorer"] == euc)]
    means = []
    for (ds, na), grp in sub.groupby(["dataset", "n_anomaly"], sort=True):
        cond = _cond(ds, na)
        blocks = grp.groupby("case")["value"].mean()
        if c.add(
            blocks,
            dataset=ds,
            condition=cond,
            n_per_class=npc,
            scorer=euc,
            comparison="AUROC − 0.5",
            unit="AUROC",
            direction=-1,
            label=cond,
            null=CHANCE,
        ):
            means.append(f"{cond} {blocks.mean():.3f}")
    if not c.tests:
        return _untestable(c, "no sphereface condition has 2 cases scored with " + euc), []
    _finish(c)
    evidence = (
        f"Mean AUROC of sphereface with {euc}: {', '.join(means)}"
        + (f" ({note})" if note else "")
        + ". Effect = AUROC − 0.5. "
        + _by_outcome(c)
    )
    return _row(c, _verdict(c), evidence), c.tests


# --------------------------------------------------------------------------- 4. fewer normal classes


def _distance_scorer(distances: pd.DataFrame, scorer: str) -> tuple[str | None, str]:
    """The scorer of claim 4: the report's when it has finite normalised distances, else a k = 1 kNN one."""
    finite = distances[np.isfinite(distances["normalised"].astype("float64"))]
    have = set(finite["scorer"])
    if scorer in have:
        return scorer, ""
    for fallback in ("cosine_k1", "euclidean_k1"):
        if fallback in have:
            return fallback, f"the report's scorer {scorer} has no normalised distances"
    return None, ""


def _fewer_normal(auroc: pd.DataFrame, distances: pd.DataFrame, scorer: str, npc: str) -> tuple[dict, list]:
    c = _Claim(
        4,
        "fewer-normal-larger-distance",
        "Fewer normal classes give larger anomaly distances and a lower AUROC.",
        "per dataset and consecutive n_anomaly a < b: normalised distance of the same anomaly class in the "
        "same case, method and seed at b − at a (claimed sign +), and AUROC of the same case, method and "
        "seed at b − at a (claimed sign −); averaged per case, paired t-test over cases, Holm across all",
        "",
        npc,
    )
    used, note = _distance_scorer(distances, scorer)
    if used is None:
        return _untestable(c, f"no finite normalised distances at {_images(npc)} ({_scorers_note(distances)})"), []
    c.scorer = used
    anomalies = distances[(distances["role"] == "anomaly") & (distances["scorer"] == used)]
    anomalies = anomalies[np.isfinite(anomalies["normalised"].astype("float64"))]
    aur = auroc[auroc["scorer"] == used]
    levels = {ds: sorted({int(a) for a in grp["n_anomaly"]}) for ds, grp in aur.groupby("dataset")}
    single = [f"{ds} a{ns[0]}" for ds, ns in levels.items() if len(ns) < 2]
    means = []
    for ds, ns in levels.items():
        for a, b in zip(ns, ns[1:]):
            cond = f"{ds} a{a}→a{b}"
            keys = ["method", "seed", "case", "class_index"]
            da = anomalies[(anomalies["dataset"] == ds) & (anomalies["n_anomaly"] == a)].set_index(keys)["normalised"]
            db = anomalies[(anomalies["dataset"] == ds) & (anomalies["n_anomaly"] == b)].set_index(keys)["normalised"]
            da, db = da.groupby(level=keys).mean(), db.groupby(level=keys).mean()
            diff = (db - da).dropna()
            if c.add(
                _case_blocks(diff),
                dataset=ds,
                condition=cond,
                n_per_class=npc,
                scorer=used,
                comparison=f"anomaly distance a{b} − a{a} (same class)",
                unit="× normal",
                direction=1,
                label=f"distance {cond}",
            ):
                shared = diff.index
                means.append(f"distance {cond} {da.loc[shared].mean():.2f} → {db.loc[shared].mean():.2f}")
            keys = ["method", "seed", "case"]
            pa = aur[(aur["dataset"] == ds) & (aur["n_anomaly"] == a)].groupby(keys)["value"].mean()
            pb = aur[(aur["dataset"] == ds) & (aur["n_anomaly"] == b)].groupby(keys)["value"].mean()
            diff = (pb - pa).dropna()
            if c.add(
                _case_blocks(diff),
                dataset=ds,
                condition=cond,
                n_per_class=npc,
                scorer=used,
                comparison=f"AUROC a{b} − a{a}",
                unit="AUROC",
                direction=-1,
                label=f"AUROC {cond}",
            ):
                lower = int(((pb - pa).dropna().groupby(level="method").mean() < 0).sum())
                n_methods = diff.index.get_level_values("method").nunique()
                means.append(
                    f"AUROC {cond} {pa.loc[diff.index].mean():.3f} → {pb.loc[diff.index].mean():.3f} "
                    f"(lower for {lower} of {n_methods} methods)"
                )
    if not c.tests:
        why = "no dataset was run with two or more values of n_anomaly"
        return _untestable(c, why + (f" ({', '.join(single)})" if single else "")), []
    _finish(c)
    evidence = (
        f"Same case and anomaly class, {used}"
        + (f" ({note})" if note else "")
        + ": "
        + "; ".join(means)
        + ". "
        + _by_outcome(c, fmt="+.3f")
    )
    if single:
        evidence += f" One n_anomaly only: {', '.join(single)}."
    return _row(c, _verdict(c), evidence), c.tests


# --------------------------------------------------------------------------- 5. k of the k-nearest mean


def _k10_beats_k1(auroc: pd.DataFrame, scorer: str, npc: str) -> tuple[dict, list]:
    parts = knn_parts(scorer)
    present = set(auroc["scorer"])
    if parts is not None:
        dist, note = parts[0], ""
    else:
        dist = next((d for d in ("cosine", "euclidean") if f"{d}_k1" in present), "cosine")
        note = f"the report's scorer {scorer} is not a kNN distance"
    k1, k10, kall = f"{dist}_k1", f"{dist}_k10", f"{dist}_kall"
    c = _Claim(
        5,
        "k10-beats-k1",
        f"The mean of the 10 smallest distances beats the minimum (k = 1) by about +{STUDY_K10_GAIN:g} points "
        f"of AUROC; the mean of all distances is about {STUDY_KALL_LOSS:g} % worse.",
        f"per condition, {k10} − {k1} (claimed sign +) and {kall} − {k1} (claimed sign −) AUROC of the same "
        "model, averaged per case; paired t-test over cases, Holm across all; sizes compared with the study's "
        "in the evidence",
        f"{k1}, {k10}, {kall}",
        npc,
    )
    missing = [s for s in (k1, k10, kall) if s not in present]
    if missing:
        ks = n_per_class_order(p[1] for s in present if (p := knn_parts(s)) and p[0] == dist)
        have = f"k values of {dist} in the tables: {', '.join(ks)}" if ks else f"no {dist} kNN scorer in the tables"
        return _untestable(c, f"no AUROC rows for {', '.join(missing)} at {_images(npc)} ({have})"), []
    sizes = []
    for (ds, na), grp in auroc[auroc["scorer"].isin([k1, k10, kall])].groupby(["dataset", "n_anomaly"], sort=True):
        cond = _cond(ds, na)
        wide = grp.pivot_table(index=["method", "seed", "case"], columns="scorer", values="value", aggfunc="mean")
        if not {k1, k10, kall} <= set(wide.columns):
            c.notes.append(f"{cond}: not every k")
            continue
        gain = c.add(
            _case_blocks((wide[k10] - wide[k1]).dropna()),
            dataset=ds,
            condition=cond,
            n_per_class=npc,
            scorer=f"{k1}, {k10}",
            comparison=f"{k10} − {k1}",
            unit="AUROC",
            direction=1,
            label=f"k = 10 in {cond}",
        )
        pair = wide[[k1, kall]].dropna()
        loss = c.add(
            _case_blocks(pair[kall] - pair[k1]),
            dataset=ds,
            condition=cond,
            n_per_class=npc,
            scorer=f"{k1}, {kall}",
            comparison=f"{kall} − {k1}",
            unit="AUROC",
            direction=-1,
            label=f"mean of all in {cond}",
        )
        text = []
        if gain:
            inside = gain["ci_low"] * 100 <= STUDY_K10_GAIN <= gain["ci_high"] * 100
            text.append(
                f"k = 10 {format(gain['effect'] * 100, '+.2f')} points [{gain['ci_low'] * 100:+.2f}, "
                f"{gain['ci_high'] * 100:+.2f}] (the study's +{STUDY_K10_GAIN:g} is "
                f"{'inside' if inside else 'outside'})"
            )
        if loss:
            relative = 100 * (pair[kall].mean() / pair[k1].mean() - 1)
            level = pair[kall].mean()
            text.append(
                f"mean of all {relative:+.0f} % against k = 1 (the study's -{STUDY_KALL_LOSS:g} %), "
                f"AUROC {level:.3f}" + (", below chance" if level < CHANCE else "")
            )
        if text:
            sizes.append(f"{cond}: {', '.join(text)}")
    if not c.tests:
        return _untestable(c, f"no condition has 2 cases with {k1}, {k10} and {kall}"), []
    _finish(c)
    evidence = (f"Distance {dist} ({note}). " if note else "") + "; ".join(sizes) + ". " + _by_outcome(c, effects=False)
    return _row(c, _verdict(c), evidence), c.tests


# --------------------------------------------------------------------------- 6. small samples


def mixup_runs(config: dict) -> dict[tuple[str, str], bool]:
    """Whether mixup was on, per (method, images per class) of every numeric n_per_class the config
    runs (main grid and annex A.2): ``annex.mixup`` overrides a method's own ``mixup`` in the annex."""

    sizes = [s for s in config["n_per_class"] if s != "all"] + list(config["annex"]["sample_size"])
    out = {}
    for method, params in config["methods"].items():
        for size in sizes:
            on = bool((params or {}).get("mixup", False))
            if is_annex(config, size) and config["annex"]["mixup"] is not None:
                on = bool(config["annex"]["mixup"])
            out[(method, str(size))] = on
    return out


def _mixup_text(mixup: dict | None, methods: list[str], sizes: list[str]) -> str:
    if mixup is None:
        return ""
    known = [(m, s) for m in methods for s in sizes if (m, s) in mixup]
    if not known:
        return ""
    on = [(m, s) for m, s in known if mixup[(m, s)]]
    if len(on) == len(known):
        return "Mixup was on for every method."
    if not on:
        return "Mixup was off for every method."
    return "Mixup was on for " + ", ".join(f"{m} at {s}" for m, s in on) + " only."


def _small_samples(auroc_any: pd.DataFrame, scorer: str, mixup: dict | None) -> tuple[dict, list]:
    c = _Claim(
        6,
        "metric-learning-beats-conventional-small-samples",
        "Metric learning beats Conventional with few images per class.",
        f"per condition, numeric images per class and method: method − {BASELINE} AUROC ({scorer}, same seed "
        "and case) averaged per case; paired t-test over cases, Holm across all; claimed sign +",
        scorer,
    )
    numeric = auroc_any[auroc_any["n_per_class"].astype(str).str.fullmatch(r"\d+")]
    if numeric.empty:
        return _untestable(c, "every run uses all training images; no run with a number of images per class"), []
    sizes = n_per_class_order(numeric["n_per_class"].astype(str).unique())
    c.n_per_class = ", ".join(sizes)
    sub = numeric[numeric["scorer"] == scorer]
    if sub.empty:
        return _untestable(c, f"no AUROC rows for {scorer} at {c.n_per_class} images per class"), []
    methods_seen = []
    several = sub.groupby(["dataset", "n_anomaly"]).ngroups > 1
    for (ds, na, npc), grp in sub.assign(n_per_class=sub["n_per_class"].astype(str)).groupby(
        ["dataset", "n_anomaly", "n_per_class"], sort=True
    ):
        cond = _cond(ds, na)
        wide = grp.pivot_table(index=["seed", "case"], columns="method", values="value", aggfunc="mean")
        methods = method_order(wide.columns)
        if BASELINE not in methods:
            c.notes.append(f"{cond} at {npc}: no {BASELINE}")
            continue
        for m in methods:
            if m == BASELINE:
                continue
            methods_seen.append(m)
            c.add(
                _case_blocks((wide[m] - wide[BASELINE]).dropna()),
                dataset=ds,
                condition=cond,
                n_per_class=npc,
                scorer=scorer,
                comparison=f"{m} − {BASELINE}",
                unit="AUROC",
                direction=1,
                label=f"{m} at {npc}" + (f" ({cond})" if several else ""),
            )
    if not c.tests:
        why = (
            f"only {BASELINE} was run with few images"
            if not methods_seen and not c.notes
            else f"no method has 2 cases paired with {BASELINE} with few images"
        )
        return _untestable(c, why), []
    _finish(c)
    evidence = (
        f"Method − {BASELINE} AUROC ({scorer}) at {c.n_per_class} images per class. "
        + _by_outcome(c)
        + " "
        + _mixup_text(mixup, method_order(set(methods_seen) | {BASELINE}), sizes)
    ).strip()
    return _row(c, _verdict(c), evidence), c.tests


# --------------------------------------------------------------------------- public


def _evaluate(
    metrics: pd.DataFrame, class_distances: pd.DataFrame, scorer: str, n_per_class: str | None, mixup: dict | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    require_columns(metrics, METRICS_COLUMNS, "metrics")
    require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances")
    auroc_any = metrics[metrics["metric"] == "auroc"].dropna(subset=["value"])
    if n_per_class is None:
        present = n_per_class_order(auroc_any["n_per_class"].astype(str).unique())
        n_per_class = present[-1] if present else "all"
    npc = str(n_per_class)
    auroc = auroc_any[auroc_any["n_per_class"].astype(str) == npc]
    distances = class_distances[class_distances["n_per_class"].astype(str) == npc]
    results = [
        _best_everywhere(auroc, scorer, npc),
        _cosine_vs_euclidean(auroc, scorer, npc),
        _sphereface_below_chance(auroc, scorer, npc),
        _fewer_normal(auroc, distances, scorer, npc),
        _k10_beats_k1(auroc, scorer, npc),
        _small_samples(auroc_any, scorer, mixup),
    ]
    claims = pd.DataFrame([r for r, _ in results], columns=FINDINGS_COLUMNS).astype(
        {"number": "int64", "n_tests": "int64", "n_supporting": "int64", "n_contradicting": "int64"}
    )
    tests = [t for _, ts in results for t in ts if "outcome" in t]
    frame = pd.DataFrame(tests, columns=TESTS_COLUMNS).astype(
        {
            "number": "int64",
            "effect": "float64",
            "ci_low": "float64",
            "ci_high": "float64",
            "n_cases": "int64",
            "statistic": "float64",
            "p_value": "float64",
            "p_holm": "float64",
        }
    )
    return claims, frame


_EVALUATED: list = []  # the last few evaluations: the report builds both tables from one, more than once


def _evaluated(
    metrics: pd.DataFrame, class_distances: pd.DataFrame, scorer: str, n_per_class: str | None, mixup: dict | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    key = (scorer, n_per_class, None if mixup is None else tuple(sorted(mixup.items())))
    for m, cd, k, result in _EVALUATED:
        if m is metrics and cd is class_distances and k == key:  # the same frames (held here, so ids stay theirs)
            return result[0].copy(), result[1].copy()
    result = _evaluate(metrics, class_distances, scorer, n_per_class, mixup)
    _EVALUATED[:] = [*_EVALUATED[-3:], (metrics, class_distances, key, result)]
    return result[0].copy(), result[1].copy()


def findings(
    metrics: pd.DataFrame,
    class_distances: pd.DataFrame,
    scorer: str = "cosine_k1",
    n_per_class: str | None = None,
    mixup: dict | None = None,
) -> pd.DataFrame:
    """One row per claim of the study (module docstring): columns ``FINDINGS_COLUMNS``.

    ``n_per_class`` is the run's main images per class (default: "all" when present, else the
    largest value in ``metrics``); ``mixup`` maps (method, images per class) to whether mixup was
    on (``mixup_runs``). ``verdict`` is one of ``VERDICTS``; ``scorer`` and ``n_per_class`` say what
    the claim was tested on, ``test`` names the test, ``n_tests`` / ``n_supporting`` /
    ``n_contradicting`` count its tests, ``evidence`` gives the effects (AUROC differences unless
    said otherwise) with 95 % intervals and Holm-adjusted p, ``rule`` the decision rule in words.
    """
    return _evaluated(metrics, class_distances, scorer, n_per_class, mixup)[0]


def findings_tests(
    metrics: pd.DataFrame,
    class_distances: pd.DataFrame,
    scorer: str = "cosine_k1",
    n_per_class: str | None = None,
    mixup: dict | None = None,
) -> pd.DataFrame:
    """One row per test behind the claims (``findings``' arguments): columns ``TESTS_COLUMNS``.

    ``effect`` is the mean over cases of the per-case value (a paired difference in ``unit``; claim
    3: AUROC − 0.5), ``ci_low``/``ci_high`` its 95 % t-interval, ``n_cases`` the blocks,
    ``statistic`` t, ``p_value`` the two-sided p, ``p_holm`` Holm-adjusted across the claim's tests,
    ``outcome`` "supports", "contradicts", "not significant" or (claim 1) "significant".
    """
    return _evaluated(metrics, class_distances, scorer, n_per_class, mixup)[1]


def _interval(df: pd.DataFrame) -> pd.DataFrame:
    """The printed tests table: the interval as one text column."""
    out = df.copy()
    out["interval"] = [f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(df["ci_low"], df["ci_high"])]
    return out


def _build(v, which):
    return which(v.t["metrics"], v.t["class_distances"], scorer=v.scorer, n_per_class=v.n, mixup=mixup_runs(v.config))


TABLES = (
    Table(
        "tbl-findings",
        "The study's claims, each with this run's verdict and the evidence: effects with their 95 % confidence "
        "intervals and Holm-adjusted p-values of paired t-tests over cases (seeds averaged within a case).",
        lambda v: _build(v, findings),
        columns=(
            Column("number", "#", "d", 0.3),
            Column("claim", "claim", None, 2.2),
            Column("verdict", "verdict", None, 1.15),
            Column("evidence", "evidence", None, 6.0),
        ),
    ),
    Table(
        "tbl-findings-tests",
        "The tests behind each claim (# as in the findings table): the mean over cases of the paired difference "
        "(claim 3: AUROC − 0.5; the distances of claim 4 in multiples of the normal level, the rest in AUROC), "
        "its 95 % t-interval, the number of cases, the two-sided p-value and the p-value Holm-adjusted across "
        "the claim's tests.",
        lambda v: _build(v, findings_tests),
        columns=(
            Column("number", "#", "d", 0.3),
            Column("condition", "condition", None, 1.3),
            Column("n_per_class", "images per class", None, 0.8),
            Column("comparison", "comparison", None, 2.6),
            Column("effect", "effect", "+.3f", 0.8),
            Column("interval", "95 % CI", None, 1.4),
            Column("n_cases", "cases", "d", 0.5),
            Column("p_value", "p", "p", 0.6),
            Column("p_holm", "p (Holm)", "p", 0.7),
            Column("outcome", "outcome", None, 1.1),
        ),
        small=True,
        shown=_interval,
    ),
)
FIGURES = ()
