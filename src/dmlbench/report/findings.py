"""The study's claims checked against this run's tables: one row per claim with a verdict, the
number behind it and a sentence of evidence, all computed from ``metrics`` and
``class_distances`` (docs/tables.md). Pure functions; the report's "Findings" section renders
``findings_markdown(findings(metrics, class_distances))``.

Conventions. AUROC rows are ``metric == "auroc"``. A *condition* is (dataset, n_anomaly). A
*pair* matches two AUROC values of the same model and test set: equal (dataset, n_anomaly,
method, n_per_class, seed, case) when scorers are compared, equal (dataset, n_anomaly,
n_per_class, seed, case) when methods are compared; keys with only one side are dropped. Means
are plain means over the rows (cases × seeds, and classes for distances). Claims 1-5 use the
rows with ``n_per_class == "all"``; claim 6 uses the smallest numeric ``n_per_class``.
``scorer`` (default ``cosine_k1``) is the scorer of claims 1, 4 and 6; claim 5 uses its distance
(the part before ``_k``). A claim whose inputs are absent is "not testable", its number NaN and
its evidence says what is missing.

1. ``no-method-best-everywhere`` — "No method is best everywhere." Per condition the best
   method is the one with the highest mean AUROC of ``scorer`` (ties: the first in the study's
   method order). Supported iff more than one distinct method is best. Number: the number of
   distinct best methods. Not testable with fewer than 2 conditions or fewer than 2 methods.
2. ``cosine-beats-euclidean`` — "Cosine distance beats Euclidean distance." Pairs of
   ``cosine_k1`` and ``euclidean_k1``. Number: mean paired difference cosine − euclidean.
   Supported iff that mean > 0 and the two-sided Wilcoxon signed-rank p
   (``stats.wilcoxon_p``) < 0.05. The evidence gives the share of pairs with cosine >
   Euclidean and the methods whose own mean difference is ≤ 0.
3. ``sphereface-euclidean-below-chance`` — "SphereFace with Euclidean distance falls below AUROC
   0.5." Mean AUROC of ``sphereface`` with ``euclidean_k1`` per condition. Number: the lowest
   condition mean. Supported iff it is < 0.5.
4. ``fewer-normal-larger-distance`` — "Fewer normal classes give larger anomaly distances."
   Per dataset with at least 2 values of n_anomaly: the mean ``normalised`` distance of the
   ``role == "anomaly"`` rows of ``scorer`` (over methods, cases, seeds and classes) per
   n_anomaly; more anomaly classes = fewer normal classes. Supported iff in every such dataset
   the mean strictly increases with n_anomaly (monotone in the means). Number: the minimum over
   those datasets of mean(largest n_anomaly) / mean(smallest n_anomaly).
5. ``k10-beats-k1`` — "The mean of the 10 smallest distances beats the minimum by about 0.7
   points of AUROC, and the mean of all is far worse." With ``d`` the distance of ``scorer``:
   mean paired differences ``d_k10 − d_k1`` and ``d_kall − d_k1`` in AUROC points (× 100).
   Supported iff the first is > 0 and the second < 0 (the size is compared with the study's
   0.7 points in the evidence, not in the verdict). Number: ``d_k10 − d_k1`` in points. Not
   testable unless ``d_k1``, ``d_k10`` and ``d_kall`` are all present.
6. ``metric-learning-beats-conventional-small-samples`` — "Metric learning beats Conventional
   with few images per class." At the smallest numeric n_per_class, for each method other than
   ``conventional``: mean paired AUROC difference (method − conventional) of ``scorer``.
   Supported iff more than half of those methods have a difference > 0. Number: that share of
   metric-learning methods (in [0, 1]); the evidence gives each method's difference.
"""

from __future__ import annotations

import re

import numpy as np
from dmlbench.report._style import pd

from dmlbench.report._declare import Table
from dmlbench.report._style import METRICS_COLUMNS, method_order, require_columns, stats

TITLE = "Findings"

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_TESTABLE = "not testable"

FINDINGS_COLUMNS = ["id", "claim", "verdict", "number", "unit", "n", "p_value", "rule", "evidence", "detail"]
CLASS_DISTANCES_COLUMNS = ["dataset", "n_anomaly", "method", "n_per_class", "seed", "case", "scorer", "role",
                           "normalised"]

RUN_KEYS = ["dataset", "n_anomaly", "method", "n_per_class", "seed", "case"]
BLOCK_KEYS = ["dataset", "n_anomaly", "n_per_class", "seed", "case"]
ALPHA = 0.05
STUDY_K10_GAIN = 0.7  # AUROC points
_KNN = re.compile(r"^(?P<dist>.+)_k(?P<k>\d+|all)$")


# --------------------------------------------------------------------------- helpers


def _cond(dataset, n_anomaly) -> str:
    return f"{dataset} a{n_anomaly}"


def _row(cid, claim, verdict, number=np.nan, unit="", n=0, p_value=np.nan, rule="", evidence="", detail=""):
    return {"id": cid, "claim": claim, "verdict": verdict, "number": float(number), "unit": unit, "n": int(n),
            "p_value": float(p_value), "rule": rule, "evidence": evidence, "detail": detail}


def _untestable(cid, claim, unit, rule, why):
    return _row(cid, claim, NOT_TESTABLE, unit=unit, rule=rule, evidence=f"{why[:1].upper()}{why[1:]}.")


def _scorers_note(auroc: pd.DataFrame) -> str:
    present = sorted(auroc["scorer"].unique())
    return f"scorers present: {', '.join(present) if present else 'none'}"


def _paired_scorers(auroc: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """AUROC of scorers ``a`` and ``b`` on the same run and case: columns ``a``, ``b`` (index RUN_KEYS)."""
    sub = auroc[auroc["scorer"].isin([a, b])]
    wide = sub.pivot_table(index=RUN_KEYS, columns="scorer", values="value", aggfunc="mean")
    if a not in wide.columns or b not in wide.columns:
        return pd.DataFrame(columns=[a, b], dtype="float64")
    return wide[[a, b]].dropna(how="any")


# --------------------------------------------------------------------------- claims


def _best_everywhere(auroc: pd.DataFrame, scorer: str) -> dict:
    cid, claim = "no-method-best-everywhere", "No method is best everywhere."
    unit = "distinct best methods"
    rule = (f"best method per condition = highest mean AUROC ({scorer}, n_per_class all); "
            "supported if more than one method is best somewhere")
    sub = auroc[auroc["scorer"] == scorer]
    if sub.empty:
        return _untestable(cid, claim, unit, rule, f"no AUROC rows for {scorer} with n_per_class all "
                                                   f"({_scorers_note(auroc)})")
    means = sub.groupby(["dataset", "n_anomaly", "method"], sort=True)["value"].mean()
    conditions = sorted({k[:2] for k in means.index})
    methods = method_order(sub["method"].unique())
    if len(conditions) < 2:
        return _untestable(cid, claim, unit, rule, f"only one condition ({_cond(*conditions[0])}); "
                                                   "a best method can only differ between conditions")
    if len(methods) < 2:
        return _untestable(cid, claim, unit, rule, f"only one method ({methods[0]}) was run")
    best = []
    for ds, na in conditions:
        cm = means.loc[(ds, na)]
        top = cm.max()
        winner = next(m for m in methods if m in cm.index and cm[m] == top)
        best.append((ds, na, winner, float(top)))
    distinct = method_order({b[2] for b in best})
    listing = ", ".join(f"{_cond(ds, na)} {m} {v:.3f}" for ds, na, m, v in best)
    if len(distinct) > 1:
        verdict = SUPPORTED
        evidence = (f"The best method by mean AUROC ({scorer}) differs between conditions "
                    f"({len(distinct)} distinct: {', '.join(distinct)}): {listing}.")
    else:
        verdict = NOT_SUPPORTED
        evidence = (f"{distinct[0]} has the highest mean AUROC ({scorer}) in every one of the {len(best)} "
                    f"conditions: {listing}.")
    detail = "; ".join(f"{_cond(ds, na)}: " + ", ".join(f"{m} {means[(ds, na, m)]:.3f}" for m in methods
                                                         if (ds, na, m) in means.index)
                       for ds, na in conditions)
    return _row(cid, claim, verdict, len(distinct), unit, len(conditions), rule=rule, evidence=evidence,
                detail=detail)


def _cosine_vs_euclidean(auroc: pd.DataFrame) -> dict:
    cid, claim = "cosine-beats-euclidean", "Cosine distance beats Euclidean distance."
    unit = "AUROC (cosine − Euclidean)"
    rule = ("mean paired AUROC difference cosine_k1 − euclidean_k1 (same model and case, n_per_class all) > 0 "
            f"and two-sided Wilcoxon signed-rank p < {ALPHA}")
    missing = [s for s in ("cosine_k1", "euclidean_k1") if s not in set(auroc["scorer"])]
    if missing:
        return _untestable(cid, claim, unit, rule, f"no AUROC rows for {' and '.join(missing)} with n_per_class "
                                                   f"all ({_scorers_note(auroc)})")
    pairs = _paired_scorers(auroc, "cosine_k1", "euclidean_k1")
    if pairs.empty:
        return _untestable(cid, claim, unit, rule, "no run has both cosine_k1 and euclidean_k1 AUROC")
    diff = pairs["cosine_k1"] - pairs["euclidean_k1"]
    mean, share = float(diff.mean()), float((diff > 0).mean())
    p = stats.wilcoxon_p(pairs["cosine_k1"].to_numpy(), pairs["euclidean_k1"].to_numpy())
    verdict = SUPPORTED if mean > 0 and p < ALPHA else NOT_SUPPORTED
    per_method = diff.groupby(level="method").mean()
    order = method_order(per_method.index)
    failing = [m for m in order if per_method[m] <= 0]
    evidence = (f"Cosine minus Euclidean AUROC is {mean:+.3f} on average over {len(diff)} (run, case) pairs; "
                f"cosine is higher in {share:.0%} of them (Wilcoxon p = {p:.2g})")
    if failing:
        evidence += "; it does not hold for " + ", ".join(f"{m} ({per_method[m]:+.3f})" for m in failing) + "."
    else:
        evidence += "; it holds for every method on average."
    detail = "; ".join(f"{m} {per_method[m]:+.3f}" for m in order) + f"; share cosine > euclidean {share:.3f}"
    return _row(cid, claim, verdict, mean, unit, len(diff), p, rule, evidence, detail)


def _sphereface_below_chance(auroc: pd.DataFrame) -> dict:
    cid = "sphereface-euclidean-below-chance"
    claim = "SphereFace with Euclidean distance falls below AUROC 0.5."
    unit = "AUROC"
    rule = "lowest per-condition mean AUROC of sphereface with euclidean_k1 (n_per_class all) < 0.5"
    absent = [what for what, ok in (("sphereface", "sphereface" in set(auroc["method"])),
                                    ("euclidean_k1", "euclidean_k1" in set(auroc["scorer"]))) if not ok]
    if absent:
        return _untestable(cid, claim, unit, rule, f"no AUROC rows for {' or '.join(absent)} with n_per_class all")
    sub = auroc[(auroc["method"] == "sphereface") & (auroc["scorer"] == "euclidean_k1")]
    if sub.empty:
        return _untestable(cid, claim, unit, rule, "no sphereface run was scored with euclidean_k1")
    means = sub.groupby(["dataset", "n_anomaly"], sort=True)["value"].mean()
    lowest = float(means.min())
    ds, na = means.idxmin()
    below = [k for k, v in means.items() if v < 0.5]
    verdict = SUPPORTED if below else NOT_SUPPORTED
    listing = ", ".join(f"{_cond(*k)} {v:.3f}" for k, v in means.items())
    if below:
        evidence = (f"SphereFace with euclidean_k1 has a mean AUROC below 0.5 in {len(below)} of {len(means)} "
                    f"conditions, lowest {lowest:.3f} ({_cond(ds, na)}): {listing}.")
    else:
        evidence = (f"SphereFace with euclidean_k1 stays at or above 0.5 in every condition, lowest {lowest:.3f} "
                    f"({_cond(ds, na)}): {listing}.")
    return _row(cid, claim, verdict, lowest, unit, len(means), rule=rule, evidence=evidence, detail=listing)


def _fewer_normal_larger_distance(distances: pd.DataFrame, scorer: str) -> dict:
    cid = "fewer-normal-larger-distance"
    claim = "Fewer normal classes give larger anomaly distances."
    unit = "ratio of anomaly distances (largest / smallest n_anomaly)"
    rule = (f"per dataset with ≥ 2 values of n_anomaly, the mean normalised distance of anomaly classes ({scorer}, "
            "n_per_class all) strictly increases with n_anomaly, in every such dataset")
    sub = distances[(distances["role"] == "anomaly") & (distances["scorer"] == scorer)]
    sub = sub[np.isfinite(sub["normalised"].astype("float64"))]
    if sub.empty:
        return _untestable(cid, claim, unit, rule, f"no finite normalised anomaly distances for {scorer} "
                                                   "with n_per_class all")
    means = sub.groupby(["dataset", "n_anomaly"], sort=True)["normalised"].mean()
    datasets = sorted(means.index.get_level_values("dataset").unique())
    tested = [ds for ds in datasets if len(means.loc[ds]) >= 2]
    if not tested:
        return _untestable(cid, claim, unit, rule, "no dataset was run with two or more values of n_anomaly "
                                                   f"({', '.join(_cond(*k) for k in means.index)})")
    ratios, increasing, parts = [], [], []
    for ds in tested:
        series = means.loc[ds].sort_index()
        vals = series.to_numpy(dtype=np.float64)
        ratios.append(vals[-1] / vals[0])
        increasing.append(bool(np.all(np.diff(vals) > 0)))
        parts.append(f"{ds} " + ", ".join(f"a{na} {v:.2f}" for na, v in series.items())
                     + ("" if increasing[-1] else " (not increasing)"))
    ratio = float(min(ratios))
    verdict = SUPPORTED if all(increasing) else NOT_SUPPORTED
    skipped = [ds for ds in datasets if ds not in tested]
    trend = "it grows with n_anomaly in every dataset" if all(increasing) else "it does not grow in every dataset"
    evidence = (f"Mean normalised anomaly distance ({scorer}) by n_anomaly: {'; '.join(parts)}; {trend}"
                f", ratio largest/smallest n_anomaly {ratio:.2f}"
                + (" (lowest over datasets)" if len(tested) > 1 else "") + ".")
    detail = "; ".join(f"{ds} ratio {r:.3f}" for ds, r in zip(tested, ratios))
    if skipped:
        detail += "; one n_anomaly only: " + ", ".join(skipped)
    return _row(cid, claim, verdict, ratio, unit, len(tested), rule=rule, evidence=evidence, detail=detail)


def _k10_beats_k1(auroc: pd.DataFrame, all_scorers: set[str], scorer: str) -> dict:
    cid = "k10-beats-k1"
    claim = ("The mean of the 10 smallest distances beats the minimum by about 0.7 points of AUROC, "
             "and the mean of all is far worse.")
    unit = "AUROC points (k10 − k1)"
    match = _KNN.match(scorer)
    if match is None:
        rule = "k10 − k1 > 0 and kall − k1 < 0 in mean paired AUROC (n_per_class all)"
        return _untestable(cid, claim, unit, rule, f"scorer {scorer} is not a k-nearest-distance scorer "
                                                   "({distance}_k{k})")
    dist = match["dist"]
    k1, k10, kall = f"{dist}_k1", f"{dist}_k10", f"{dist}_kall"
    rule = (f"mean paired AUROC difference {k10} − {k1} > 0 and {kall} − {k1} < 0 "
            "(same model and case, n_per_class all)")
    present = set(auroc["scorer"])
    missing = [s for s in (k1, k10, kall) if s not in present]
    if missing:
        ks = sorted((m["k"] for s in all_scorers if (m := _KNN.match(s)) and m["dist"] == dist),
                    key=lambda k: (k == "all", int(k) if k.isdigit() else 0))
        have = f"k values of {dist} in the tables: {', '.join(ks)}" if ks else f"no {dist}_k* scorer in the tables"
        return _untestable(cid, claim, unit, rule, f"no AUROC rows for {', '.join(missing)} with n_per_class all "
                                                   f"({have})")
    p10 = _paired_scorers(auroc, k10, k1)
    pall = _paired_scorers(auroc, kall, k1)
    if p10.empty or pall.empty:
        return _untestable(cid, claim, unit, rule, f"no run has {k1} together with {k10} and {kall}")
    gain = float((p10[k10] - p10[k1]).mean() * 100)
    loss = float((pall[kall] - pall[k1]).mean() * 100)
    verdict = SUPPORTED if gain > 0 and loss < 0 else NOT_SUPPORTED
    if abs(gain - STUDY_K10_GAIN) <= STUDY_K10_GAIN / 2:
        size = "close to"
    elif gain < STUDY_K10_GAIN:
        size = "smaller than"
    else:
        size = "larger than"
    evidence = (f"{k10} − {k1} is {gain:+.2f} AUROC points on average over {len(p10)} (run, case) pairs "
                f"({size} the study's +{STUDY_K10_GAIN} points), and {kall} − {k1} is {loss:+.2f} points.")
    detail = f"{k10} − {k1} {gain:+.3f} points (n = {len(p10)}); {kall} − {k1} {loss:+.3f} points (n = {len(pall)})"
    return _row(cid, claim, verdict, gain, unit, len(p10), rule=rule, evidence=evidence, detail=detail)


def _small_samples(auroc_any: pd.DataFrame, scorer: str) -> dict:
    cid = "metric-learning-beats-conventional-small-samples"
    claim = "Metric learning beats Conventional with few images per class."
    unit = "share of metric-learning methods beating conventional"
    rule = (f"at the smallest numeric n_per_class, mean paired AUROC difference ({scorer}) of each method vs "
            f"{stats.BASELINE} (same dataset, n_anomaly, seed, case); supported if more than half of the methods are > 0")
    npcs = sorted({int(v) for v in auroc_any["n_per_class"].astype(str).unique() if v.isdigit()})
    if not npcs:
        return _untestable(cid, claim, unit, rule, "every run uses n_per_class all; no small-sample runs")
    npc = str(npcs[0])
    sub = auroc_any[(auroc_any["n_per_class"].astype(str) == npc) & (auroc_any["scorer"] == scorer)]
    if sub.empty:
        return _untestable(cid, claim, unit, rule, f"no AUROC rows for {scorer} at n_per_class {npc}")
    methods = method_order(sub["method"].unique())
    if stats.BASELINE not in methods:
        return _untestable(cid, claim, unit, rule, f"no {stats.BASELINE} runs at n_per_class {npc}")
    others = [m for m in methods if m != stats.BASELINE]
    if not others:
        return _untestable(cid, claim, unit, rule, f"only {stats.BASELINE} was run at n_per_class {npc}")
    wide = sub.pivot_table(index=BLOCK_KEYS, columns="method", values="value", aggfunc="mean")
    diffs, counts = {}, {}
    for m in others:
        d = (wide[m] - wide[stats.BASELINE]).dropna()
        if len(d):
            diffs[m], counts[m] = float(d.mean()), len(d)
    if not diffs:
        return _untestable(cid, claim, unit, rule, f"no (case, seed) at n_per_class {npc} has {stats.BASELINE} "
                                                   "and another method")
    winners = [m for m, d in diffs.items() if d > 0]
    share = len(winners) / len(diffs)
    verdict = SUPPORTED if share > 0.5 else NOT_SUPPORTED
    listing = ", ".join(f"{m} {d:+.3f}" for m, d in diffs.items())
    evidence = (f"At n_per_class {npc}, {len(winners)} of {len(diffs)} metric-learning methods have a higher mean "
                f"paired AUROC ({scorer}) than {stats.BASELINE}; differences: {listing}.")
    detail = "; ".join(f"{m} {d:+.4f} (n = {counts[m]})" for m, d in diffs.items())
    return _row(cid, claim, verdict, share, unit, len(diffs), rule=rule, evidence=evidence, detail=detail)


# --------------------------------------------------------------------------- public


def findings(metrics: pd.DataFrame, class_distances: pd.DataFrame, scorer: str = "cosine_k1") -> pd.DataFrame:
    """One row per claim of the study (module docstring): columns ``FINDINGS_COLUMNS``.

    ``number`` is the headline number (NaN when not testable), ``unit`` says what it measures,
    ``n`` how many conditions, pairs, datasets or methods it rests on, ``p_value`` the test's p
    where the rule uses one (claim 2), ``rule`` the decision rule in words, ``evidence`` one
    sentence with the numbers and ``detail`` the per-group breakdown.
    """
    require_columns(metrics, METRICS_COLUMNS, "metrics")
    require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances")
    auroc_any = metrics[metrics["metric"] == "auroc"].dropna(subset=["value"])
    auroc = auroc_any[auroc_any["n_per_class"].astype(str) == "all"]
    distances = class_distances[class_distances["n_per_class"].astype(str) == "all"]
    rows = [
        _best_everywhere(auroc, scorer),
        _cosine_vs_euclidean(auroc),
        _sphereface_below_chance(auroc),
        _fewer_normal_larger_distance(distances, scorer),
        _k10_beats_k1(auroc, set(auroc_any["scorer"]), scorer),
        _small_samples(auroc_any, scorer),
    ]
    df = pd.DataFrame(rows, columns=FINDINGS_COLUMNS)
    return df.astype({"id": "str", "claim": "str", "verdict": "str", "number": "float64", "unit": "str",
                      "n": "int64", "p_value": "float64", "rule": "str", "evidence": "str", "detail": "str"})


def findings_markdown(df: pd.DataFrame) -> str:
    """Markdown bullet list, one claim a line: ``- **verdict** — claim: evidence``."""
    require_columns(df, ["verdict", "claim", "evidence"], "findings", "Pass the table that findings() returns.")
    lines = [f"- **{r.verdict}** — {str(r.claim).rstrip('.')}: {r.evidence}" for r in df.itertuples(index=False)]
    return "\n".join(lines) + ("\n" if lines else "")


TABLES = (
    Table(
        "tbl-findings",
        "The study's claims, each with this run's verdict, the number behind it and the evidence.",
        lambda v: findings(v.t["metrics"], v.t["class_distances"], scorer=v.scorer),
        printed=False,
    ),
)
FIGURES = ()
