"""Section 14, Findings: the study's claims tested on this run's tables, each with a verdict, the
tests behind it and a sentence of evidence. Pure functions of ``metrics`` and ``class_distances``
(docs/tables.md) and the config's methods; ``findings`` gives one row per claim
(``tbl-findings``), ``findings_tests`` one row per test (``tbl-findings-tests``).

How every claim is tested
-------------------------
*Unit.* The unit of a test is the **case**: a paired difference is taken where both sides saw
the same model inputs (same dataset, case, seed and, as each claim says, method or class), then
averaged over seeds (and methods or classes) within the case. Seeds of one case share its
anomaly classes, so they are repeated measures, not independent blocks.

*Methods by head.* A claim about "methods" counts a head once: the variants of one head (a
sweep, or two entries naming the same head; a pytorch-metric-learning loss by its loss) are
averaged within each case into one method, named by its head (``dmlbench.config.methods.family``). A
claim that names a head (claim 3: SphereFace) tests every variant of that head, each named.
Claim 6's baseline is the Conventional head (its variants averaged), never a metric-learning
method, whatever the labels.

*Test.* A sign-flip (randomisation) test of the per-case values against 0 (claim 3:
against 0.5; claim 5: against the claimed size), ``stats.case_test``: under H0 each case's
value is as likely positive as negative, and every one of the 2^n sign patterns is enumerated
(seeded Monte Carlo above 16 cases). It makes no normality assumption, and with n cases its
smallest two-sided p is 2 / 2^n: **5 cases cannot give p < 0.05** (0.0625); 6 can (0.031), and
Holm over m tests asks more (:func:`dmlbench.stats.cases_to_reach`). The evidence says so when
no test of a claim could be significant. The t-test's p stands beside it in the tests table.
The effect's interval is the summary's (``stats.mean_interval``: studentised bootstrap and
t-interval over cases).

*Overlapping cases.* With n_anomaly > 1, case k and case k + 1 share n_anomaly − 1 anomaly
classes; a test that takes such cases as independent rejects far too often when classes differ
in how hard they are (``dmlbench.calibration``). A test uses all its cases when their anomaly
classes are pairwise disjoint; else the largest disjoint set when it has enough cases to reach
p < 0.05 (6); else no test holds its level and the test is **exploratory**: its effect and p are
shown, but it takes no part in Holm's correction or the verdict (``stats.case_design``).

*Multiple tests.* Each claim is tested per condition (dataset, n_anomaly) - and per method or
images per class where the claim is about them - and the p-values of its confirmatory tests are
Holm-adjusted together (``stats.holm``). A test **supports** the claim when its Holm p < 0.05 and
the effect has the claimed sign (claim 5: lies in the claimed band), **contradicts** it when
Holm p < 0.05 the other way, and is **not significant** otherwise.

*Verdicts* (``VERDICTS``), from the claim's tests:

- **supported**: every test supports;
- **supported in some conditions**: some tests support, none contradicts, the others are not
  significant or exploratory;
- **conflicting**: some tests support and some contradict;
- **contradicted in some conditions**: some contradict, none supports;
- **contradicted**: every test contradicts;
- **not significant**: no confirmatory test is significant;
- **exploratory**: every test is exploratory (overlapping cases);
- **not testable**: no test could be made (the evidence says what is missing).

Claim 1 reads its tests its own way (below).

*What is tested.* Claims 1-5 use the main images per class of the run (``n_per_class``:
"all" when run, else the largest main-grid size) and the report's ``scorer`` where the claim is
about it; a claim about distances falls back to the kNN columns when the scorer is not one
(the evidence says which scorer was used and why). Claim 6 uses every numeric images-per-class
value in the tables.

The claims
----------
1. ``no-method-best-everywhere`` - "No method is best everywhere." Per condition, every pair of
   methods (paired test over the cases with every method, one Holm correction over all pairs
   and conditions: no method is picked from the data it is then tested on). A method is
   *beaten* in a condition when another is significantly better there; *best* when it is
   significantly better than every other. **Supported**: every method is beaten in some
   condition. **Contradicted**: one method is best in every condition (all confirmatory).
   **Not significant**: otherwise (the methods never beaten could still be best everywhere;
   they are named). **Exploratory**: no condition has a confirmatory test. Needs 2 conditions.
2. ``cosine-beats-euclidean`` - "Cosine distance beats Euclidean distance." Per condition,
   ``cosine_k{k}`` − ``euclidean_k{k}`` AUROC of the same model (method, seed, case) averaged per
   case: on average over the methods (each head once) and for every method, all Holm-adjusted
   together, so no single method decides; k is the report scorer's (1 when the scorer is not a
   kNN distance). Claimed sign +.
3. ``sphereface-euclidean-below-chance`` - "SphereFace with Euclidean distance falls below AUROC
   0.5." Per condition and method with the SphereFace head, its AUROC with ``euclidean_k{k}``
   averaged per case, against 0.5. Claimed sign −.
4. ``fewer-normal-larger-distance`` - "Fewer normal classes give larger anomaly distances and a
   lower AUROC." Per dataset and pair of consecutive n_anomaly values a < b (b has fewer normal
   classes): (i) the normalised distance of the *same* anomaly class in the same case, method
   and seed at b minus at a (case k's anomaly classes at a are among those at b), claimed sign
   +; (ii) the AUROC of case k at b minus at a (same method and seed), claimed sign −. Cases
   overlap as they do at b. Scorer: the report's when it has normalised distances, else
   ``cosine_k1`` (or ``euclidean_k1``).
5. ``k10-beats-k1`` - "The mean of the 10 smallest distances beats the minimum (k = 1) by +0.7 ±
   0.5 points of AUROC; the mean of all distances is 10 ± 5 % worse." The study's sizes with
   the margin written in the claim. With ``d`` the report scorer's distance (cosine when it is
   not a kNN distance), per condition: 100 (``d_k10`` − ``d_k1``) AUROC points, and 100
   (``d_kall`` / ``d_k1`` − 1) per cent, of the same model, averaged per case. Each is tested
   against its band (``stats.band_p``): inside it significantly (two one-sided tests) supports,
   outside it significantly contradicts.
6. ``metric-learning-beats-conventional-small-samples`` - "Metric learning beats Conventional
   with few images per class." Per condition, numeric n_per_class and metric-learning method
   (every head but Conventional): method − Conventional AUROC of ``scorer`` (same seed and
   case), claimed sign +. The evidence says whether each side trained with mixup, from what each
   run trained with (``mixup_runs``), and names the comparisons where the two sides differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dmlbench.config import methods as method_entries
from dmlbench.config import train_spec
from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Column, Table
from dmlbench.report._style import METRICS_COLUMNS, n_per_class_order, pd, require_columns, stats
from dmlbench.report.study import knn_parts

TITLE = "Findings"

SUPPORTED = "supported"
SUPPORTED_SOME = "supported in some conditions"
CONFLICTING = "conflicting"
CONTRADICTED_SOME = "contradicted in some conditions"
CONTRADICTED = "contradicted"
NOT_SIGNIFICANT = "not significant"
EXPLORATORY = "exploratory"
NOT_TESTABLE = "not testable"
VERDICTS = (
    SUPPORTED,
    SUPPORTED_SOME,
    CONFLICTING,
    CONTRADICTED_SOME,
    CONTRADICTED,
    NOT_SIGNIFICANT,
    EXPLORATORY,
    NOT_TESTABLE,
)
#: Each verdict in words, as the report's text defines it (pinned by tests/unit/test_findings.py).
VERDICT_MEANINGS = {
    SUPPORTED: "every test supports the claim",
    SUPPORTED_SOME: "some tests support it, none contradicts it, the others are not significant or exploratory",
    CONFLICTING: "some tests support it and some contradict it",
    CONTRADICTED_SOME: "some tests contradict it, none supports it",
    CONTRADICTED: "every test contradicts it",
    NOT_SIGNIFICANT: "no confirmatory test is significant",
    EXPLORATORY: "every test is exploratory: the cases share anomaly classes, so no test holds its level",
    NOT_TESTABLE: "the tables lack what the claim needs",
}

# The outcome of one test.
SUPPORTS = "supports"
CONTRADICTS = "contradicts"
UNDECIDED = "not significant"
SIGNIFICANT = "significant"  # claim 1: one method of the pair is significantly better
EXPLORATORY_TEST = "exploratory"

ALPHA = 0.05
LEVEL = 0.95
CHANCE = 0.5
STUDY_K10_GAIN = 0.7  # AUROC points, k = 10 over k = 1
STUDY_K10_MARGIN = 0.5  # points either side: "about +0.7"
STUDY_KALL_LOSS = 10.0  # per cent, the mean of all distances below k = 1
STUDY_KALL_MARGIN = 5.0  # percentage points either side: "about 10 %"
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
    "n_tested",
    "statistic",
    "p_value",
    "p_t",
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
SIGN_FLIP = "exact sign-flip test over cases"


# --------------------------------------------------------------------------- helpers


def _cond(dataset, n_anomaly) -> str:
    return f"{dataset} a{int(n_anomaly)}"


def _effect(t: dict, fmt: str = "+.3f") -> str:
    """ "+0.021 [+0.012, +0.030]": the effect and its interval."""
    return f"{format(t['effect'], fmt)} [{format(t['ci_low'], fmt)}, {format(t['ci_high'], fmt)}]"


def _case_blocks(diff: pd.Series) -> pd.Series:
    """Paired differences (index with a ``case`` level) averaged per case: the test's blocks."""
    return diff.groupby(level="case").mean().sort_index()


def method_groups(labels, methods: dict | None = None) -> dict[str, list[str]]:
    """The methods of a claim about methods: labels grouped by head (``dmlbench.config.methods.family``:
    a head, or ``pml:<loss>``), in the study's order. A group of one label is named by its label;
    a group of several (a sweep, or entries naming one head) by its head."""
    ordered = method_entries.method_order(labels, methods)
    families: dict[str, list[str]] = {}
    for label in ordered:
        families.setdefault(method_entries.family(label, methods), []).append(label)
    return {(members[0] if len(members) == 1 else fam): members for fam, members in families.items()}


def _grouped(wide: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """Per-case values of each group: the mean over its labels (columns of ``wide``)."""
    return pd.DataFrame({name: wide[labels].mean(axis=1, skipna=False) for name, labels in groups.items()})


def _groups_note(groups: dict[str, list[str]]) -> str:
    several = [f"{name} = mean of {', '.join(labels)}" for name, labels in groups.items() if len(labels) > 1]
    return f" Variants of one head averaged per case: {'; '.join(several)}." if several else ""


@dataclass
class _Claim:
    """A claim being evaluated: its tests (dicts of TESTS_COLUMNS but p_holm and outcome, plus
    ``if_significant``, ``exploratory``, ``min_p``, ``note`` and ``label``) and notes for the
    evidence."""

    number: int
    id: str
    claim: str
    rule: str
    scorer: str = ""
    n_per_class: str = ""
    test: str = SIGN_FLIP
    n_classes: dict = field(default_factory=dict)
    tests: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what could not be tested

    def add(
        self,
        values: pd.Series,
        *,
        dataset: str,
        n_anomaly: int,
        condition: str,
        n_per_class: str,
        scorer: str,
        comparison: str,
        unit: str,
        direction: int,
        label: str,
        null: float = 0.0,
        band: tuple[float, float] | None = None,
    ) -> dict | None:
        """Test the per-case ``values`` (index: case) against ``null`` (or the claimed ``band``)
        with the overlap rule of n_anomaly's cases; None (with a note) when no case has a value."""
        values = values.dropna()
        if len(values) < 2:
            self.notes.append(
                f"{label}: {len(values)} case{'' if len(values) == 1 else 's'} with both sides, a test needs 2"
            )
            return None
        r = stats.case_test(values, int(n_anomaly), self.n_classes.get(dataset), null=null, band=band)
        if band is not None:
            if_significant = SUPPORTS if r.inside else CONTRADICTS
        elif direction == 0:
            if_significant = SIGNIFICANT
        else:
            if_significant = SUPPORTS if np.sign(r.effect) == direction else CONTRADICTS
        row = {
            "number": self.number,
            "id": self.id,
            "dataset": dataset,
            "condition": condition,
            "n_per_class": str(n_per_class),
            "scorer": scorer,
            "comparison": comparison,
            "effect": r.effect,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "unit": unit,
            "n_cases": r.design.n_cases,
            "n_tested": r.n,
            "statistic": r.statistic,
            "p_value": r.p,
            "p_t": r.p_t,
            "if_significant": if_significant,
            "exploratory": r.design.exploratory,
            "min_p": r.min_p,
            "note": r.design.note,
            "label": label,
        }
        self.tests.append(row)
        return row


def _test_text(c: _Claim) -> str:
    """The claim's test in words: "exact" only where every test enumerated every sign pattern
    (up to ``stats.SIGNFLIP_EXACT_MAX`` cases; above, random patterns: ``stats.signflip_p``)."""
    if not c.tests:
        return ""
    if max(int(t["n_tested"]) for t in c.tests) <= stats.SIGNFLIP_EXACT_MAX:
        return c.test
    return (
        f"{c.test.replace('exact sign-flip', 'sign-flip')}; every sign pattern up to {stats.SIGNFLIP_EXACT_MAX} "
        f"cases, {stats.RESAMPLES:,} random ones above"
    )


def _finish(c: _Claim) -> None:
    """Holm across the claim's confirmatory tests, then each test's outcome; an exploratory test
    takes no part (its p is not valid, so it may not make another test's correction milder)."""
    confirmatory = [t for t in c.tests if not t["exploratory"]]
    adjusted = stats.holm([t["p_value"] for t in confirmatory])
    for t, p in zip(confirmatory, adjusted):
        t["p_holm"] = float(p)
        t["outcome"] = t["if_significant"] if p < ALPHA else UNDECIDED
    for t in c.tests:
        if t["exploratory"]:
            t["p_holm"], t["outcome"] = float("nan"), EXPLORATORY_TEST


def verdict_of(outcomes: list[str]) -> str:
    """The verdict of a claim from its tests' outcomes (``VERDICT_MEANINGS``)."""
    if not outcomes:
        return NOT_TESTABLE
    confirmatory = [o for o in outcomes if o != EXPLORATORY_TEST]
    if not confirmatory:
        return EXPLORATORY
    supports, contradicts = outcomes.count(SUPPORTS), outcomes.count(CONTRADICTS)
    if supports == len(outcomes):
        return SUPPORTED
    if contradicts == len(outcomes):
        return CONTRADICTED
    if supports and contradicts:
        return CONFLICTING
    if supports:
        return SUPPORTED_SOME
    if contradicts:
        return CONTRADICTED_SOME
    return NOT_SIGNIFICANT


def _verdict(c: _Claim) -> str:
    return verdict_of([t["outcome"] for t in c.tests])


def _power_note(c: _Claim) -> str:
    """When no confirmatory test of the claim could reach significance after Holm - too few
    cases for a sign-flip p that small - say so, and how many cases could."""
    confirmatory = [t for t in c.tests if not t["exploratory"]]
    if not confirmatory:
        return ""
    m = len(confirmatory)
    if any(t["min_p"] * m < ALPHA for t in confirmatory):
        return ""
    n = max(t["n_tested"] for t in confirmatory)
    smallest = min(t["min_p"] for t in confirmatory)
    one = stats.cases_to_reach(ALPHA)
    holm_n = stats.cases_to_reach(ALPHA / m)
    need = f"{one} cases could reach {ALPHA:g}" + (f", {holm_n} with Holm over its {m} tests" if m > 1 else "")
    return (
        f" With {n} case{'s' if n != 1 else ''} no test of this claim can be significant: the smallest "
        f"sign-flip p is {smallest:.4g}{f', above the {ALPHA / m:.3g} Holm asks of the first of {m} tests' if m > 1 else ''}"
        f" ({need})."
    )


def _exploratory_note(c: _Claim) -> str:
    explored = [t for t in c.tests if t["exploratory"]]
    if not explored:
        return ""
    conditions = list(dict.fromkeys(t["condition"] for t in explored))
    first = explored[0]
    return (
        f" Exploratory ({'; '.join(conditions)}): the {first['n_cases']} cases share anomaly classes, so no "
        "test there holds its level; its effects are shown, not judged."
    )


def _by_outcome(c: _Claim, fmt: str = "+.3f", effects: bool = True) -> str:
    """ "Supports: X +0.021 [+0.012, +0.030]. Contradicts: Y -0.011 [...]. Not significant: Z +0.002."
    (effects with their 95 % interval where significant; the tests table has every interval and p)."""
    parts = []
    for outcome, words in (
        (SUPPORTS, "Supports"),
        (CONTRADICTS, "Contradicts"),
        (SIGNIFICANT, "Significant"),
        (UNDECIDED, "Not significant"),
        (EXPLORATORY_TEST, "Exploratory"),
    ):
        tests = [t for t in c.tests if t["outcome"] == outcome]
        if tests:
            shown = [
                t["label"]
                + (
                    ""
                    if not effects
                    else " " + (_effect(t, fmt) if outcome in (SUPPORTS, CONTRADICTS) else format(t["effect"], fmt))
                )
                for t in tests
            ]
            parts.append(f"{words}: {'; '.join(shown)}.")
    return " ".join(parts)


def _row(c: _Claim, verdict: str, evidence: str) -> dict:
    if c.tests:
        evidence = evidence.rstrip() + _exploratory_note(c) + _power_note(c)
        subsets = sorted({t["note"] for t in c.tests if t["note"] and not t["exploratory"]})
        if subsets:
            evidence += f" Tested {'; '.join(subsets)}."
    if c.tests and c.notes:
        evidence += f" Not tested: {'; '.join(c.notes)}."
    return {
        "number": c.number,
        "id": c.id,
        "claim": c.claim,
        "verdict": verdict,
        "scorer": c.scorer,
        "n_per_class": c.n_per_class,
        "test": _test_text(c),
        "n_tests": len(c.tests),
        "n_supporting": sum(t["outcome"] == SUPPORTS for t in c.tests),
        "n_contradicting": sum(t["outcome"] == CONTRADICTS for t in c.tests),
        "evidence": evidence.strip(),
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


def _per_case(grp: pd.DataFrame) -> pd.DataFrame:
    """case × method: each method's value in a case, the mean over its seeds."""
    return grp.pivot_table(index="case", columns="method", values="value", aggfunc="mean")


# --------------------------------------------------------------------------- 1. no method best everywhere


def _best_everywhere(auroc: pd.DataFrame, scorer: str, npc: str, methods: dict | None, n_classes: dict):
    c = _Claim(
        1,
        "no-method-best-everywhere",
        "No method is best everywhere.",
        "per condition every pair of methods (each head once: variants averaged per case), paired sign-flip "
        "test over the cases with every method, one Holm correction over all pairs and conditions; supported "
        "if every method is significantly beaten somewhere, contradicted if one method is significantly "
        "better than every other in every condition, otherwise not significant",
        scorer,
        npc,
        n_classes=n_classes,
    )
    sub = auroc[auroc["scorer"] == scorer]
    if sub.empty:
        return _untestable(c, f"no AUROC rows for {scorer} at {_images(npc)} ({_scorers_note(auroc)})"), []
    groups_of, all_groups = {}, {}
    for (ds, na), grp in sub.groupby(["dataset", "n_anomaly"], sort=True):
        cond = _cond(ds, na)
        groups = method_groups(grp["method"].unique(), methods)
        all_groups.update(groups)
        if len(groups) < 2:
            c.notes.append(f"{cond}: one method ({next(iter(groups))})")
            continue
        per_case = _grouped(_per_case(grp), groups).dropna(how="any")
        names = list(groups)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                c.add(
                    per_case[a] - per_case[b],
                    dataset=ds,
                    n_anomaly=na,
                    condition=cond,
                    n_per_class=npc,
                    scorer=scorer,
                    comparison=f"{a} − {b}",
                    unit="AUROC",
                    direction=0,
                    label=f"{cond} {a} − {b}",
                )
        if any(t["condition"] == cond for t in c.tests):
            groups_of[cond] = (names, per_case.mean())
    if len(groups_of) < 2:
        why = "only one condition could be tested" if groups_of else "no condition could be tested"
        why += "; a best method can only differ between conditions" if len(groups_of) == 1 else ""
        return _untestable(c, why), c.tests
    _finish(c)
    conds = list(groups_of)
    confirmed = [cond for cond in conds if any(t["condition"] == cond and not t["exploratory"] for t in c.tests)]
    wins = {cond: [] for cond in conds}  # (winner, loser) of each significant pair
    for t in c.tests:
        if t["outcome"] == SIGNIFICANT:
            a, b = t["comparison"].split(" − ")
            wins[t["condition"]].append((a, b) if t["effect"] > 0 else (b, a))
    names = list(all_groups)
    beaten = {m: [cond for cond in conds if any(loser == m for _, loser in wins[cond])] for m in names}
    best = {}
    for cond in conds:
        others = groups_of[cond][0]
        for m in others:
            if {loser for w, loser in wins[cond] if w == m} == set(others) - {m}:
                best[cond] = m
    parts = []
    for cond in conds:
        top = groups_of[cond][1].idxmax()
        if cond not in confirmed:
            parts.append(f"{cond}: top by mean {top}, exploratory")
        elif wins[cond]:
            parts.append(
                f"{cond}: top by mean {top}; significantly better: {', '.join(f'{w} > {x}' for w, x in wins[cond])}"
            )
        else:
            parts.append(f"{cond}: top by mean {top}, no pair significant")
    never = [m for m in names if not beaten[m]]
    everywhere = [m for m in names if len(confirmed) == len(conds) and all(best.get(cond) == m for cond in conds)]
    if not confirmed:
        verdict, tail = EXPLORATORY, "No condition has a confirmatory test."
    elif not never:
        verdict = SUPPORTED
        tail = "Every method is significantly beaten somewhere: " + ", ".join(
            f"{m} ({', '.join(beaten[m])})" for m in names
        )
        tail += "."
    elif everywhere:
        verdict = CONTRADICTED
        tail = f"{everywhere[0]} is significantly better than every other method in every condition."
    else:
        verdict = NOT_SIGNIFICANT
        tail = f"Never significantly beaten (each could still be best everywhere): {', '.join(never)}."
    evidence = (
        f"Pairs of methods per condition ({scorer}, Holm over {sum(not t['exploratory'] for t in c.tests)} "
        f"confirmatory {'test' if sum(not t['exploratory'] for t in c.tests) == 1 else 'tests'}): "
        f"{'; '.join(parts)}. {tail}" + _groups_note(all_groups)
    )
    return _row(c, verdict, evidence), c.tests


# --------------------------------------------------------------------------- 2. cosine vs euclidean


def _cosine_vs_euclidean(auroc: pd.DataFrame, scorer: str, npc: str, methods: dict | None, n_classes: dict):
    k, note = _knn_k(scorer)
    cos, euc = f"cosine_k{k}", f"euclidean_k{k}"
    c = _Claim(
        2,
        "cosine-beats-euclidean",
        "Cosine distance beats Euclidean distance.",
        f"per condition, {cos} − {euc} AUROC of the same model (method, seed, case) averaged per case, on "
        "average over the methods (each head once) and for every method; paired sign-flip test over cases, "
        "Holm across all; claimed sign +",
        f"{cos}, {euc}",
        npc,
        n_classes=n_classes,
    )
    missing = [s for s in (cos, euc) if s not in set(auroc["scorer"])]
    if missing:
        return _untestable(
            c, f"no AUROC rows for {' and '.join(missing)} at {_images(npc)} ({_scorers_note(auroc)})"
        ), []
    all_groups = {}
    for (ds, na), grp in auroc[auroc["scorer"].isin([cos, euc])].groupby(["dataset", "n_anomaly"], sort=True):
        cond = _cond(ds, na)
        wide = grp.pivot_table(index=["method", "seed", "case"], columns="scorer", values="value", aggfunc="mean")
        if cos not in wide or euc not in wide:
            c.notes.append(f"{cond}: only one of the two distances")
            continue
        diff = (wide[cos] - wide[euc]).dropna()
        per_label = diff.groupby(level=["case", "method"]).mean().unstack("method")
        groups = method_groups(per_label.columns, methods)
        all_groups.update(groups)
        per_group = _grouped(per_label, groups)
        common = dict(dataset=ds, n_anomaly=na, condition=cond, n_per_class=npc, scorer=f"{cos}, {euc}", unit="AUROC")
        c.add(
            per_group.mean(axis=1),  # each head once; a case missing a method averages those it has
            comparison=f"{cos} − {euc}, mean over methods",
            direction=1,
            label=f"{cond} mean over methods",
            **common,
        )
        if len(groups) > 1:
            for name in groups:
                c.add(
                    per_group[name],
                    comparison=f"{cos} − {euc}, {name}",
                    direction=1,
                    label=f"{cond} {name}",
                    **common,
                )
    if not c.tests:
        return _untestable(c, f"no condition has 2 cases with both {cos} and {euc}"), []
    _finish(c)
    evidence = (
        f"{cos} − {euc} AUROC per case, on average over the methods and per method"
        + (f" ({note})" if note else "")
        + ". "
        + _by_outcome(c)
        + _groups_note(all_groups)
    )
    return _row(c, _verdict(c), evidence), c.tests


# --------------------------------------------------------------------------- 3. sphereface + euclidean


def _sphereface_below_chance(auroc: pd.DataFrame, scorer: str, npc: str, methods: dict | None, n_classes: dict):
    k, note = _knn_k(scorer)
    euc = f"euclidean_k{k}"
    c = _Claim(
        3,
        "sphereface-euclidean-below-chance",
        "SphereFace with Euclidean distance falls below AUROC 0.5.",
        f"per condition and method with the SphereFace head, its AUROC with {euc} averaged per case against "
        "0.5 (sign-flip test over cases, Holm across all); claimed sign −",
        euc,
        npc,
        test="exact sign-flip test over cases (against 0.5)",
        n_classes=n_classes,
    )
    labels = sorted(set(auroc["method"]))
    sphere = [
        m for m in method_entries.method_order(labels, methods) if method_entries.head_of(m, methods) == "sphereface"
    ]
    absent = []
    if not sphere:
        absent.append(f"a method with the SphereFace head (methods: {', '.join(labels) or 'none'})")
    if euc not in set(auroc["scorer"]):
        absent.append(euc)
    if absent:
        return _untestable(c, f"no AUROC rows for {' or '.join(absent)} at {_images(npc)}"), []
    sub = auroc[auroc["method"].isin(sphere) & (auroc["scorer"] == euc)]
    means = []
    for (ds, na), grp in sub.groupby(["dataset", "n_anomaly"], sort=True):
        cond = _cond(ds, na)
        per_case = _per_case(grp)
        for label in [m for m in sphere if m in per_case]:
            name = cond if len(sphere) == 1 else f"{cond} {label}"
            if c.add(
                per_case[label],
                dataset=ds,
                n_anomaly=na,
                condition=cond,
                n_per_class=npc,
                scorer=euc,
                comparison=f"AUROC − 0.5, {label}",
                unit="AUROC",
                direction=-1,
                label=name,
                null=CHANCE,
            ):
                means.append(f"{name} {per_case[label].mean():.3f}")
    if not c.tests:
        return _untestable(c, "no SphereFace condition has 2 cases scored with " + euc), []
    _finish(c)
    evidence = (
        f"Mean AUROC with {euc}: {', '.join(means)}"
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


def _fewer_normal(auroc: pd.DataFrame, distances: pd.DataFrame, scorer: str, npc: str, n_classes: dict):
    c = _Claim(
        4,
        "fewer-normal-larger-distance",
        "Fewer normal classes give larger anomaly distances and a lower AUROC.",
        "per dataset and consecutive n_anomaly a < b: normalised distance of the same anomaly class in the "
        "same case, method and seed at b − at a (claimed sign +), and AUROC of the same case, method and "
        "seed at b − at a (claimed sign −); averaged per case, sign-flip test over cases (which overlap as "
        "at b), Holm across all",
        "",
        npc,
        n_classes=n_classes,
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
            common = dict(dataset=ds, n_anomaly=b, condition=cond, n_per_class=npc, scorer=used)
            if c.add(
                _case_blocks(diff),
                comparison=f"anomaly distance a{b} − a{a} (same class)",
                unit="× normal",
                direction=1,
                label=f"distance {cond}",
                **common,
            ):
                shared = diff.index
                means.append(f"distance {cond} {da.loc[shared].mean():.2f} → {db.loc[shared].mean():.2f}")
            keys = ["method", "seed", "case"]
            pa = aur[(aur["dataset"] == ds) & (aur["n_anomaly"] == a)].groupby(keys)["value"].mean()
            pb = aur[(aur["dataset"] == ds) & (aur["n_anomaly"] == b)].groupby(keys)["value"].mean()
            diff = (pb - pa).dropna()
            if c.add(
                _case_blocks(diff),
                comparison=f"AUROC a{b} − a{a}",
                unit="AUROC",
                direction=-1,
                label=f"AUROC {cond}",
                **common,
            ):
                lower = int((diff.groupby(level="method").mean() < 0).sum())
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


def _k10_beats_k1(auroc: pd.DataFrame, scorer: str, npc: str, n_classes: dict):
    parts = knn_parts(scorer)
    present = set(auroc["scorer"])
    if parts is not None:
        dist, note = parts[0], ""
    else:
        dist = next((d for d in ("cosine", "euclidean") if f"{d}_k1" in present), "cosine")
        note = f"the report's scorer {scorer} is not a kNN distance"
    k1, k10, kall = f"{dist}_k1", f"{dist}_k10", f"{dist}_kall"
    gain_band = (STUDY_K10_GAIN - STUDY_K10_MARGIN, STUDY_K10_GAIN + STUDY_K10_MARGIN)
    loss_band = (-STUDY_KALL_LOSS - STUDY_KALL_MARGIN, -STUDY_KALL_LOSS + STUDY_KALL_MARGIN)
    c = _Claim(
        5,
        "k10-beats-k1",
        f"The mean of the 10 smallest distances beats the minimum (k = 1) by +{STUDY_K10_GAIN:g} ± "
        f"{STUDY_K10_MARGIN:g} points of AUROC; the mean of all distances is {STUDY_KALL_LOSS:g} ± "
        f"{STUDY_KALL_MARGIN:g} % worse.",
        f"per condition, 100 ({k10} − {k1}) AUROC points against [{gain_band[0]:+g}, {gain_band[1]:+g}] and "
        f"100 ({kall} / {k1} − 1) per cent against [{loss_band[0]:+g}, {loss_band[1]:+g}], of the same model "
        "averaged per case; inside a band significantly (two one-sided sign-flip tests) supports, outside it "
        "significantly contradicts; Holm across all",
        f"{k1}, {k10}, {kall}",
        npc,
        test="sign-flip tests of the claimed sizes over cases",
        n_classes=n_classes,
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
        common = dict(dataset=ds, n_anomaly=na, condition=cond, n_per_class=npc, direction=0)
        gain = c.add(
            _case_blocks((100 * (wide[k10] - wide[k1])).dropna()),
            scorer=f"{k1}, {k10}",
            comparison=f"100 ({k10} − {k1})",
            unit="AUROC points",
            label=f"k = 10 in {cond}",
            band=gain_band,
            **common,
        )
        pair = wide[[k1, kall]].dropna()
        loss = c.add(
            _case_blocks(100 * (pair[kall] / pair[k1] - 1)),
            scorer=f"{k1}, {kall}",
            comparison=f"100 ({kall} / {k1} − 1)",
            unit="% of k = 1",
            label=f"mean of all in {cond}",
            band=loss_band,
            **common,
        )
        text = []
        if gain:
            text.append(
                f"k = 10 {gain['effect']:+.2f} points [{gain['ci_low']:+.2f}, {gain['ci_high']:+.2f}] "
                f"(claimed +{STUDY_K10_GAIN:g} ± {STUDY_K10_MARGIN:g})"
            )
        if loss:
            level = pair[kall].mean()
            text.append(
                f"mean of all {loss['effect']:+.0f} % [{loss['ci_low']:+.0f}, {loss['ci_high']:+.0f}] against k = 1 "
                f"(claimed -{STUDY_KALL_LOSS:g} ± {STUDY_KALL_MARGIN:g} %), AUROC {level:.3f}"
                + (", below chance" if level < CHANCE else "")
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
    """Whether each run trained with mixup, per (method, images per class) of every numeric
    n_per_class the config runs (main grid and annex A.2): the ``mixup`` of the run's own spec
    (``dmlbench.config.train_spec``, what run.json records and the trainer reads), so annex A.2's
    ``annex.mixup`` counts only for the methods that can mix - not the pytorch-metric-learning
    losses, which train without mixup whatever the annex says."""

    sizes = [s for s in config["n_per_class"] if s != "all"] + list(config["annex"]["sample_size"])
    dataset = next(iter(config["datasets"]))
    seed = config["seeds"][0]
    out = {}
    for method in config["methods"]:
        for size in sizes:
            spec = train_spec(config, dataset, 1, method, size, seed)
            out[(method, str(size))] = bool(spec["method_params"].get("mixup", False))
    return out


def _mixup_text(mixup: dict | None, methods: list[str], sizes: list[str]) -> str:
    if mixup is None:
        return ""
    known = [(m, s) for s in sizes for m in methods if (m, s) in mixup]
    if not known:
        return ""
    on = [(m, s) for m, s in known if mixup[(m, s)]]
    off = [(m, s) for m, s in known if not mixup[(m, s)]]
    if not off:
        return "Mixup was on for every method."
    if not on:
        return "Mixup was off for every method."
    if len(off) <= len(on):
        return "Mixup was on for every method but " + ", ".join(f"{m} at {s}" for m, s in off) + "."
    return "Mixup was on for " + ", ".join(f"{m} at {s}" for m, s in on) + " only."


def _mixup_mismatch(mixup: dict | None, labels: list[str], base: list[str], size: str) -> str:
    """ "supcon without mixup, conventional with" when the two sides of a test trained differently."""
    if mixup is None:
        return ""
    side = {label: mixup.get((label, size)) for label in labels + base}
    if None in side.values() or len(set(side.values())) < 2:
        return ""

    def words(group):
        on = {side[x] for x in group}
        return "with mixup" if on == {True} else "without mixup" if on == {False} else "partly with mixup"

    return f"{', '.join(labels)} {words(labels)}, {', '.join(base)} {words(base)}"


def _small_samples(auroc_any: pd.DataFrame, scorer: str, mixup: dict | None, methods: dict | None, n_classes: dict):
    c = _Claim(
        6,
        "metric-learning-beats-conventional-small-samples",
        "Metric learning beats Conventional with few images per class.",
        f"per condition, numeric images per class and metric-learning method (each head once; every head but "
        f"Conventional): method − Conventional AUROC ({scorer}, same seed and case) averaged per case; sign-flip "
        "test over cases, Holm across all; claimed sign +",
        scorer,
        n_classes=n_classes,
    )
    numeric = auroc_any[auroc_any["n_per_class"].astype(str).str.fullmatch(r"\d+")]
    if numeric.empty:
        return _untestable(c, "every run uses all training images; no run with a number of images per class"), []
    sizes = n_per_class_order(numeric["n_per_class"].astype(str).unique())
    c.n_per_class = ", ".join(sizes)
    sub = numeric[numeric["scorer"] == scorer]
    if sub.empty:
        return _untestable(c, f"no AUROC rows for {scorer} at {c.n_per_class} images per class"), []
    learners_seen, all_groups, mismatches, labels_seen = [], {}, [], set()
    several = sub.groupby(["dataset", "n_anomaly"]).ngroups > 1
    for (ds, na, npc), grp in sub.assign(n_per_class=sub["n_per_class"].astype(str)).groupby(
        ["dataset", "n_anomaly", "n_per_class"], sort=True
    ):
        cond = _cond(ds, na)
        per_case = _per_case(grp)
        labels_seen |= set(per_case.columns)
        groups = method_groups(per_case.columns, methods)
        base = [label for label in per_case.columns if method_entries.head_of(label, methods) == BASELINE]
        if not base:
            c.notes.append(f"{cond} at {npc}: no method with the Conventional head")
            continue
        base = method_entries.method_order(base, methods)
        baseline = per_case[base].mean(axis=1, skipna=False)
        learners = {name: labels for name, labels in groups.items() if not set(labels) & set(base)}
        all_groups.update(learners)
        all_groups[BASELINE if len(base) > 1 else base[0]] = base
        for name, labels in learners.items():
            learners_seen.append(name)
            mismatch = _mixup_mismatch(mixup, labels, base, npc)
            if mismatch:
                mismatches.append(f"{name} at {npc}: {mismatch}")
            c.add(
                per_case[labels].mean(axis=1, skipna=False) - baseline,
                dataset=ds,
                n_anomaly=na,
                condition=cond,
                n_per_class=npc,
                scorer=scorer,
                comparison=f"{name} − {BASELINE}",
                unit="AUROC",
                direction=1,
                label=f"{name} at {npc}" + (f" ({cond})" if several else ""),
            )
    if not c.tests:
        why = (
            "only the Conventional head was run with few images"
            if not learners_seen and not c.notes
            else f"no method has 2 cases paired with {BASELINE} with few images"
        )
        return _untestable(c, why), []
    _finish(c)
    evidence = (
        f"Method − {BASELINE} AUROC ({scorer}) at {c.n_per_class} images per class. "
        + _by_outcome(c)
        + " "
        + _mixup_text(mixup, method_entries.method_order(labels_seen, methods), sizes)
    ).strip()
    if mismatches:
        evidence += " The two sides trained differently, so mixup is part of the difference: " + "; ".join(mismatches)
        evidence += "."
    evidence += _groups_note(all_groups)
    return _row(c, _verdict(c), evidence), c.tests


# --------------------------------------------------------------------------- public


def _n_classes(class_distances: pd.DataFrame) -> dict[str, int]:
    """Classes per dataset (every test class has a row in each case), for the rotation overlap
    of cases; a dataset without rows is left out (overlaps are then found within C cases)."""
    return {str(ds): int(n) for ds, n in class_distances.groupby("dataset")["class_index"].nunique().items()}


def _evaluate(
    metrics: pd.DataFrame,
    class_distances: pd.DataFrame,
    scorer: str,
    n_per_class: str | None,
    mixup: dict | None,
    methods: dict | None,
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
    n_classes = _n_classes(class_distances)
    results = [
        _best_everywhere(auroc, scorer, npc, methods, n_classes),
        _cosine_vs_euclidean(auroc, scorer, npc, methods, n_classes),
        _sphereface_below_chance(auroc, scorer, npc, methods, n_classes),
        _fewer_normal(auroc, distances, scorer, npc, n_classes),
        _k10_beats_k1(auroc, scorer, npc, n_classes),
        _small_samples(auroc_any, scorer, mixup, methods, n_classes),
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
            "n_tested": "int64",
            "statistic": "float64",
            "p_value": "float64",
            "p_t": "float64",
            "p_holm": "float64",
        }
    )
    return claims, frame


_EVALUATED: list = []  # the last few evaluations: the report builds both tables from one, more than once


def _key(value):
    """A hashable stand-in for the arguments (the methods' entries hold lists and dicts)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    return value


def _evaluated(metrics, class_distances, scorer, n_per_class, mixup, methods):
    key = (scorer, n_per_class, _key(mixup), _key(methods))
    for m, cd, k, result in _EVALUATED:
        if m is metrics and cd is class_distances and k == key:  # the same frames (held here, so ids stay theirs)
            return result[0].copy(), result[1].copy()
    result = _evaluate(metrics, class_distances, scorer, n_per_class, mixup, methods)
    _EVALUATED[:] = [*_EVALUATED[-3:], (metrics, class_distances, key, result)]
    return result[0].copy(), result[1].copy()


def findings(
    metrics: pd.DataFrame,
    class_distances: pd.DataFrame,
    scorer: str = "cosine_k1",
    n_per_class: str | None = None,
    mixup: dict | None = None,
    methods: dict | None = None,
) -> pd.DataFrame:
    """One row per claim of the study (module docstring): columns ``FINDINGS_COLUMNS``.

    ``n_per_class`` is the run's main images per class (default: "all" when present, else the
    largest value in ``metrics``); ``mixup`` maps (method, images per class) to whether the run
    trained with mixup (``mixup_runs``); ``methods`` is the effective config's (expanded)
    ``methods``, which names each label's head (without it, a label's head is read from its
    name: ``dmlbench.config.methods.head_of``). ``verdict`` is one of ``VERDICTS``; ``scorer`` and
    ``n_per_class`` say what the claim was tested on, ``test`` names the test, ``n_tests`` /
    ``n_supporting`` / ``n_contradicting`` count its tests, ``evidence`` gives the effects (AUROC
    differences unless said otherwise) with 95 % intervals, ``rule`` the decision rule in words.
    """
    return _evaluated(metrics, class_distances, scorer, n_per_class, mixup, methods)[0]


def findings_tests(
    metrics: pd.DataFrame,
    class_distances: pd.DataFrame,
    scorer: str = "cosine_k1",
    n_per_class: str | None = None,
    mixup: dict | None = None,
    methods: dict | None = None,
) -> pd.DataFrame:
    """One row per test behind the claims (``findings``' arguments): columns ``TESTS_COLUMNS``.

    ``effect`` is the mean over the tested cases of the per-case value (a paired difference in
    ``unit``; claim 3: AUROC − 0.5; claim 5: the size itself), ``ci_low``/``ci_high`` its 95 %
    interval, ``n_cases`` the cases with a value, ``n_tested`` those the test used (fewer when
    overlapping cases leave a disjoint subset), ``statistic`` t, ``p_value`` the sign-flip p
    (two-sided; claim 5: of its band), ``p_t`` the t-test's beside it, ``p_holm`` Holm-adjusted
    across the claim's confirmatory tests (NaN for an exploratory one), ``outcome`` "supports",
    "contradicts", "not significant", "exploratory" or (claim 1) "significant".
    """
    return _evaluated(metrics, class_distances, scorer, n_per_class, mixup, methods)[1]


def _interval(df: pd.DataFrame) -> pd.DataFrame:
    """The printed tests table: the interval as one text column."""
    out = df.copy()
    out["interval"] = [f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(df["ci_low"], df["ci_high"])]
    return out


def _build(v, which):
    return which(
        v.t["metrics"],
        v.t["class_distances"],
        scorer=v.scorer,
        n_per_class=v.n,
        mixup=mixup_runs(v.config),
        methods=v.config["methods"],
    )


TABLES = (
    Table(
        "tbl-findings",
        "The study's claims, each with this run's verdict and the evidence: effects with their 95 % confidence "
        "intervals, from sign-flip tests over cases (exact up to 16 cases; seeds averaged within a case), Holm-adjusted.",
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
        "(claim 3: AUROC − 0.5; claim 5: the size in AUROC points or per cent; the distances of claim 4 in "
        "multiples of the normal level, the rest in AUROC), its 95 % interval, the cases it used, the "
        "sign-flip p-value, the t-test's beside it, and the sign-flip p Holm-adjusted across the claim's "
        "confirmatory tests.",
        lambda v: _build(v, findings_tests),
        columns=(
            Column("number", "#", "d", 0.3),
            Column("condition", "condition", None, 1.3),
            Column("n_per_class", "images per class", None, 0.8),
            Column("comparison", "comparison", None, 2.6),
            Column("effect", "effect", "+.3f", 0.8),
            Column("interval", "95 % CI", None, 1.4),
            Column("n_tested", "cases", "d", 0.5),
            Column("p_value", "p (sign-flip)", "p", 0.7),
            Column("p_t", "p (t-test)", "p", 0.7),
            Column("p_holm", "p (Holm)", "p", 0.7),
            Column("outcome", "outcome", None, 1.1),
        ),
        small=True,
        shown=_interval,
    ),
)
FIGURES = ()


def cases_sentence(metrics: pd.DataFrame) -> str:
    """What the run's numbers of cases per condition allow, in one sentence of the findings text:
    read from metrics.parquet, so it holds for `cases: all` and for conditions of datasets with
    different numbers of classes (the fewest cases decide what every condition can reach)."""
    counts = sorted({int(n) for n in metrics.groupby(["dataset", "n_anomaly"])["case"].nunique()})
    if not counts:
        raise DmlbenchError("metrics.parquet has no rows: no cases to count; re-run `dmlbench aggregate`.")
    cases = counts[0]
    run = f"{cases}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    fewest = "" if len(counts) == 1 else f" with {cases}"
    smallest = stats.min_signflip_p(cases)
    if smallest > ALPHA:
        return (
            f"This run has {run} case{'s' if counts[-1] != 1 else ''} per condition: the smallest sign-flip p"
            f"{fewest} is {smallest:.4g}, so no test there can be significant; {stats.cases_to_reach(ALPHA)} cases "
            f"could reach {ALPHA:g} (`cases` in the config)."
        )
    return (
        f"This run has {run} cases per condition: the smallest sign-flip p{fewest} is {smallest:.2g}, so a test "
        f"can reach {ALPHA:g} where enough of them are disjoint (the Setup section counts them); Holm's "
        f"correction over m tests asks p below {ALPHA:g}/m of the first."
    )
