"""Section 15, Reproduction: the study's published numbers (and any ``references:`` files) beside this run's,
cell by cell; whether the methods come in the same order; how this run's setting differs from
the study's; and, where the run holds a method both with and without a switch of the original
implementation (dmlbench.config.switches), what each switch changes.

Pure functions of ``metrics`` (docs/tables.md), the reference rows
(dmlbench.config.references) and the config's methods.

Cells
-----
A reference row matches this run where the dataset key, n_anomaly, images per class
(``n_per_class``: "all" or N), the scorer ``{distance}_k{k}`` and the head of a method agree (every
label with that head is compared: a switch variant too). A ``mean_of_methods`` row is compared
with the per-case mean over the reference's heads (each head: the mean of its labels without a
switch), when the run has them all. *Ours* is, over the cases (seeds averaged within a case), the
mean with the findings' interval (``stats.mean_interval``: studentised bootstrap and t-interval)
for a ``mean_auroc`` reference, the median with the order-statistic interval of the median
(``stats.median_interval``) for a ``median_auroc`` one.

Verdicts (``verdict``): **agrees** when the published value lies in our interval or within the
reference's tolerance of ours; else **higher** or **lower** (ours against the published value);
**not comparable** where the reference gives a bound only (``upper_bound``).

Order
-----
Per reference cell group (reference, dataset, n_anomaly, n_per_class, distance, k, statistic):
the heads with a published value (a bound and the mean of methods left out), each head's value the
per-case mean of its labels without a switch. Spearman's rank correlation of the published values
with ours (3 heads or more), and the pairs whose order **flips** beyond both tolerances: a above b
published by more than the two values' tolerances together, and b above a here with the 95 %
interval of the per-case difference a − b below 0. The order **agrees** when no pair flips.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from dmlbench.config import annex_conditions, training_recipe
from dmlbench.config import methods as method_entries
from dmlbench.config.references import MEAN_OF_METHODS, REFERENCE_COLUMNS, reference_rows, study_metadata
from dmlbench.config.specs import n_cases
from dmlbench.config.switches import SWITCHES, switches_on
from dmlbench.errors import ConfigError
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import (
    METRICS_COLUMNS,
    PANEL_WIDTH,
    alt,
    method_colour_scale,
    method_order,
    pd,
    require_columns,
    stats,
    titled,
)
from dmlbench.report.findings import findings, mixup_runs

TITLE = "Reproduction"

AGREES = "agrees"
HIGHER = "higher"
LOWER = "lower"
NOT_COMPARABLE = "not comparable"
VERDICTS = (AGREES, HIGHER, LOWER, NOT_COMPARABLE)
ORDER_AGREES = "agrees"
ORDER_DIFFERS = "differs"
#: The keys of a reference cell group: the methods of one group are ranked together.
GROUP_KEYS = ["reference", "dataset", "n_anomaly", "n_per_class", "distance", "k", "statistic"]
CELL_COLUMNS = [
    *GROUP_KEYS,
    "method",
    "label",
    "switches",
    "published",
    "upper_bound",
    "tolerance",
    "ours",
    "ci_low",
    "ci_high",
    "n_cases",
    "difference",
    "verdict",
    "basis",
    "source",
]
ORDER_COLUMNS = [*GROUP_KEYS, "n_methods", "spearman", "n_flips", "flips", "order"]
FIX_COLUMNS = [
    "switches",
    "method",
    "against",
    "dataset",
    "n_anomaly",
    "n_per_class",
    "scorer",
    "effect",
    "ci_low",
    "ci_high",
    "n_cases",
    "n_tested",
    "p_value",
    "p_t",
    "p_holm",
    "outcome",
]
ALPHA = 0.05
#: Panels to a row: three, as the other figures, so that the study's ten cells fit one page.
FIGURE_COLUMNS = 3


# --------------------------------------------------------------------------- references and matches


def reference_frame(config: dict | None = None) -> pd.DataFrame:
    """Every reference value (the study's, then the ``references`` files'): ``reference`` and
    ``REFERENCE_COLUMNS``."""
    return pd.DataFrame(reference_rows(config), columns=["reference", *REFERENCE_COLUMNS])


def _run_cells(config: dict) -> set[tuple]:
    """(dataset, n_anomaly, n_per_class, distance, k) that the config's runs score."""
    sizes = {
        (c["dataset"], int(n)): [str(s) for s in config["n_per_class"]]
        for c in config["conditions"]
        for n in c["n_anomaly"]
    }
    for dataset, n in annex_conditions(config):
        sizes[(dataset, n)] = sizes.get((dataset, n), []) + [str(s) for s in config["annex"]["sample_size"]]
    ks = [str(k) for k in config["scoring"]["k"]]
    return {
        (dataset, n, size, distance, k)
        for (dataset, n), npcs in sizes.items()
        for size in npcs
        for distance in config["scoring"]["distances"]
        for k in ks
    }


def _matches(config: dict, rows: list[dict]) -> list[bool]:
    """Which reference rows (dicts) this config's runs can be compared with: its datasets,
    conditions, images per class, annex A.2 sizes, distances, k and heads (pandas-free: the
    workflow plans the section's tables from it)."""
    cells = _run_cells(config)
    heads = {method_entries.head_of(label, config["methods"]) for label in config["methods"]}
    return [
        (r["dataset"], int(r["n_anomaly"]), str(r["n_per_class"]), r["distance"], str(r["k"])) in cells
        and (r["method"] in heads or r["method"] == MEAN_OF_METHODS)
        for r in rows
    ]


def matching_rows(config: dict, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """The reference rows this config's runs can be compared with (from the config alone)."""
    refs = reference_frame(config) if references is None else references
    return refs[_matches(config, refs.to_dict("records"))]


def needs_match(config: dict) -> str | None:
    """Why no cell of this config matches a reference (None when one does)."""
    if any(_matches(config, reference_rows(config))):
        return None
    return no_match_sentence(config)


def no_match_sentence(config: dict) -> str:
    """One sentence: no cell of this run matches a published value, and the config that would."""
    datasets = ", ".join(sorted(config["datasets"]))
    published = ", ".join(sorted({r["dataset"] for r in reference_rows(config)}))
    return (
        f"no cell of this run (dataset {datasets}) matches a published value (datasets {published}); "
        f"`{study_metadata()['matching_config']}` runs the study's own grid"
    )


# --------------------------------------------------------------------------- our values


def case_values(metrics: pd.DataFrame) -> pd.DataFrame:
    """AUROC per (dataset, n_anomaly, n_per_class, scorer, case) × method label, each case's
    seeds averaged."""
    require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    auroc = metrics[metrics["metric"] == "auroc"].assign(n_per_class=lambda d: d["n_per_class"].astype(str))
    return auroc.pivot_table(
        index=["dataset", "n_anomaly", "n_per_class", "scorer", "case"],
        columns="method",
        values="value",
        aggfunc="mean",
    )


def _wide(values: pd.DataFrame, dataset, n_anomaly, n_per_class, scorer) -> pd.DataFrame | None:
    key = (dataset, int(n_anomaly), str(n_per_class), scorer)
    try:
        return values.xs(key, level=["dataset", "n_anomaly", "n_per_class", "scorer"]).dropna(axis=1, how="all")
    except KeyError:
        return None


def _switches(label: str, methods: dict | None) -> list[str]:
    return switches_on((methods or {}).get(label) or {})


def _head_values(wide: pd.DataFrame, methods: dict | None) -> pd.DataFrame:
    """Per case, each head's value: the mean of its labels without a switch."""
    plain = [label for label in wide.columns if not _switches(label, methods)]
    heads: dict[str, list[str]] = {}
    for label in method_order(plain):
        heads.setdefault(method_entries.head_of(label, methods) or label, []).append(label)
    return pd.DataFrame({head: wide[labels].mean(axis=1, skipna=False) for head, labels in heads.items()})


def summarise(values, statistic: str) -> tuple[float, float, float]:
    """Our value over the cases and its 95 % interval: the mean (``stats.mean_interval``) for
    ``mean_auroc``, the median (``stats.median_interval``) for ``median_auroc``."""
    x = np.asarray(values, dtype=np.float64)
    if statistic == "median_auroc":
        lo, hi = stats.median_interval(x)
        return float(np.median(x)), lo, hi
    if len(x) < 2:
        return float(x.mean()), float("nan"), float("nan")
    lo, hi = stats.mean_interval(x)
    return float(x.mean()), lo, hi


def verdict(published: float, ours: float, ci_low: float, ci_high: float, tolerance: float) -> tuple[str, str]:
    """(verdict, basis): ``agrees`` when ``published`` lies in [ci_low, ci_high] (basis "our
    interval") or within ``tolerance`` of ``ours`` ("tolerance"; both: "interval and tolerance"),
    else ``higher`` or ``lower`` (ours against published); ``not comparable`` when there is no
    published value (a bound only)."""
    if published is None or math.isnan(published):
        return NOT_COMPARABLE, "a bound only"
    in_interval = not (math.isnan(ci_low) or math.isnan(ci_high)) and ci_low <= published <= ci_high
    in_tolerance = not math.isnan(tolerance) and abs(ours - published) <= tolerance + 1e-12
    if in_interval or in_tolerance:
        basis = (
            "interval and tolerance" if in_interval and in_tolerance else "our interval" if in_interval else "tolerance"
        )
        return AGREES, basis
    return (HIGHER if ours > published else LOWER), ""


def comparison_table(references: pd.DataFrame, metrics: pd.DataFrame, methods: dict | None = None) -> pd.DataFrame:
    """One row per (reference value, our method label) that share a cell: ``CELL_COLUMNS``
    (module docstring). ``difference`` is ours − published."""
    values = case_values(metrics)
    rows = []
    for ref in references.itertuples(index=False):
        wide = _wide(values, ref.dataset, ref.n_anomaly, ref.n_per_class, f"{ref.distance}_k{ref.k}")
        if wide is None:
            continue
        base = {key: getattr(ref, key) for key in GROUP_KEYS} | {
            "method": ref.method,
            "published": ref.value,
            "upper_bound": ref.upper_bound,
            "tolerance": ref.tolerance,
            "source": ref.source,
        }
        if ref.method == MEAN_OF_METHODS:
            heads = [
                m
                for m in dict.fromkeys(references.loc[references["reference"] == ref.reference, "method"])
                if m != MEAN_OF_METHODS
            ]
            per_head = _head_values(wide, methods)
            if not heads or not set(heads) <= set(per_head.columns):
                continue
            series = {f"mean of {len(heads)} heads": (per_head[heads].mean(axis=1, skipna=False).dropna(), [])}
        else:
            labels = [
                label for label in method_order(wide.columns) if method_entries.head_of(label, methods) == ref.method
            ]
            series = {label: (wide[label].dropna(), _switches(label, methods)) for label in labels}
        for label, (x, switches) in series.items():
            if x.empty:
                continue
            ours, lo, hi = summarise(x.to_numpy(), ref.statistic)
            v, basis = verdict(ref.value, ours, lo, hi, ref.tolerance)
            rows.append(
                base
                | {
                    "label": label,
                    "switches": ", ".join(switches) or "none",
                    "ours": ours,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n_cases": len(x),
                    "difference": ours - ref.value,
                    "verdict": v,
                    "basis": basis,
                }
            )
    return pd.DataFrame(rows, columns=CELL_COLUMNS).astype({"n_anomaly": "int64", "n_cases": "int64"})


def order_table(references: pd.DataFrame, metrics: pd.DataFrame, methods: dict | None = None) -> pd.DataFrame:
    """Per reference cell group the run shares: Spearman's rank correlation of the heads' published
    values with ours, and the pairs whose order flips (module docstring): ``ORDER_COLUMNS``."""
    values = case_values(metrics)
    refs = references[(references["method"] != MEAN_OF_METHODS) & references["value"].notna()]
    rows = []
    for key, grp in refs.groupby(GROUP_KEYS, sort=False):
        group = dict(zip(GROUP_KEYS, key))
        wide = _wide(
            values, group["dataset"], group["n_anomaly"], group["n_per_class"], f"{group['distance']}_k{group['k']}"
        )
        if wide is None:
            continue
        per_head = _head_values(wide, methods)
        grp = grp[grp["method"].isin(per_head.columns)]
        if grp.empty:
            continue
        heads = grp["method"].tolist()
        published = dict(zip(heads, grp["value"]))
        tolerance = dict(zip(heads, grp["tolerance"]))
        ours = {h: summarise(per_head[h].dropna().to_numpy(), group["statistic"])[0] for h in heads}
        rho = stats.spearman([published[h] for h in heads], [ours[h] for h in heads])
        flips = []
        for a, b in combinations(heads, 2):
            if published[a] < published[b]:
                a, b = b, a  # a: the higher published
            if published[a] - published[b] <= tolerance[a] + tolerance[b]:
                continue
            d = (per_head[a] - per_head[b]).dropna()
            if len(d) < 2:
                continue
            lo, hi = stats.mean_interval(d.to_numpy())
            if hi < 0:
                flips.append(
                    f"{a} above {b} published ({published[a]:.3f} vs {published[b]:.3f}), below here "
                    f"({d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}])"
                )
        rows.append(
            group
            | {
                "n_methods": len(heads),
                "spearman": rho,
                "n_flips": len(flips),
                "flips": "; ".join(flips) or "none",
                "order": ORDER_AGREES if not flips else ORDER_DIFFERS,
            }
        )
    return pd.DataFrame(rows, columns=ORDER_COLUMNS).astype(
        {"n_anomaly": "int64", "n_methods": "int64", "n_flips": "int64"}
    )


# --------------------------------------------------------------------------- settings


def _yes_no(value) -> str:
    if value is None:
        return "not stated"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def settings_table(config: dict, meta: dict | None = None) -> pd.DataFrame:
    """Where this run's setting differs from the study's (``study.yaml``'s ``setting``): backbone,
    pretrained weights, input size, epochs, embedding layer, cases, and each switch of the
    original implementation (all on in the study). Columns: setting, reference, this_run,
    differs ("yes", "no", "unknown" where the study does not state it, "partly" for a switch
    that some methods turn on)."""
    meta = meta or study_metadata()
    ref = meta["setting"]
    model = config["model"]
    recipes = {ds: training_recipe(config, ds, "all") for ds in config["datasets"]}
    epochs = sorted(
        {
            f"{r.get('freeze_epochs', 0)} frozen + {r['epochs']}" if model.get("pretrained") else str(r["epochs"])
            for r in recipes.values()
        }
    )
    input_size = model.get("input_size")
    ours = {
        "backbone": (ref["backbone"], model["backbone"]),
        "pretrained (ImageNet)": (ref["pretrained"], bool(model.get("pretrained"))),
        "input size (px)": (ref.get("input_size"), input_size if input_size is not None else "the dataset's own"),
        "epochs": (ref.get("epochs"), ", ".join(epochs)),
        "embedding layer": (ref["embedding"], model["embedding"]),
        "cases": (ref["cases"], _cases_text(config)),
    }
    rows = []
    for setting, (theirs, mine) in ours.items():
        differs = "unknown" if theirs is None else ("no" if str(_yes_no(theirs)) == str(_yes_no(mine)) else "yes")
        rows.append({"setting": setting, "reference": _yes_no(theirs), "this_run": _yes_no(mine), "differs": differs})
    labels = list(config["methods"])
    for name in SWITCHES:
        on = [label for label in labels if name in _switches(label, config["methods"])]
        this_run = f"on for {', '.join(on)}" if on else "off"
        differs = "no" if on and len(on) == len(labels) else ("partly" if on else "yes")
        rows.append({"setting": f"switch {name}", "reference": "on", "this_run": this_run, "differs": differs})
    return pd.DataFrame(rows, columns=["setting", "reference", "this_run", "differs"])


def _cases_text(config: dict):
    """The run's cases per condition: the number, or with `cases: all` the rotations it resolved
    to ("all (10)"; per dataset where they differ; "all" where a folder cannot be listed here)."""
    if config["cases"] != "all":
        return config["cases"]
    try:
        counts = sorted({n_cases(config, c["dataset"]) for c in config["conditions"]})
    except ConfigError:
        return "all"
    return int(counts[0]) if len(counts) == 1 else f"all ({', '.join(map(str, counts))})"


# --------------------------------------------------------------------------- what the fixes changed


def switch_pairs(methods: dict) -> list[tuple[str, str, list[str]]]:
    """(plain label, switched label, the switches it turns on): two entries of one head whose
    resolved parameters differ only by switch keys, the plain one with no switch on."""
    pairs = []
    for switched, entry in methods.items():
        on = switches_on(entry)
        if not on:
            continue
        rest = {k: v for k, v in entry.items() if k not in SWITCHES}
        for plain, other in methods.items():
            if (
                plain != switched
                and not switches_on(other)
                and {k: v for k, v in other.items() if k not in SWITCHES} == rest
            ):
                pairs.append((plain, switched, on))
                break
    return pairs


def needs_pairs(config: dict) -> str | None:
    if switch_pairs(config["methods"]):
        return None
    return no_pairs_sentence()


def no_pairs_sentence() -> str:
    return (
        "this run holds no method both with and without a switch of the original implementation; add a "
        "variant beside its method to measure one, e.g. `arcface_orig: {head: arcface, untrained_weights: true}` "
        f"(switches: {', '.join(SWITCHES)})"
    )


def fixes_table(
    metrics: pd.DataFrame, methods: dict, scorer: str, n_per_class: str, n_classes: dict | None = None
) -> pd.DataFrame:
    """The paired difference switched − plain per pair and condition (AUROC of ``scorer`` at
    ``n_per_class``), tested as the findings test (``stats.case_test``: exact sign-flip over cases,
    the overlap rule, the interval of the mean), Holm-adjusted within the table; ``outcome``
    "higher" or "lower" (the switch moves AUROC so, Holm p < 0.05), "not significant", or
    "exploratory" (overlapping cases: not in Holm). Columns ``FIX_COLUMNS``."""
    values = case_values(metrics)
    rows = []
    for plain, switched, on in switch_pairs(methods):
        for (dataset, n_anomaly, npc, sc), wide in values.groupby(
            level=["dataset", "n_anomaly", "n_per_class", "scorer"]
        ):
            if sc != scorer or npc != str(n_per_class) or not {plain, switched} <= set(wide.columns):
                continue
            d = (wide[switched] - wide[plain]).droplevel(["dataset", "n_anomaly", "n_per_class", "scorer"]).dropna()
            if len(d) < 2:
                continue
            r = stats.case_test(d, int(n_anomaly), (n_classes or {}).get(dataset))
            rows.append(
                {
                    "switches": ", ".join(on),
                    "method": switched,
                    "against": plain,
                    "dataset": dataset,
                    "n_anomaly": int(n_anomaly),
                    "n_per_class": npc,
                    "scorer": scorer,
                    "effect": r.effect,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "n_cases": r.design.n_cases,
                    "n_tested": r.n,
                    "p_value": r.p,
                    "p_t": r.p_t,
                    "exploratory": r.design.exploratory,
                }
            )
    out = pd.DataFrame(rows, columns=[*FIX_COLUMNS[:-2], "exploratory"])
    out["p_holm"] = float("nan")
    confirmatory = ~out["exploratory"].astype(bool)
    if confirmatory.any():
        out.loc[confirmatory, "p_holm"] = stats.holm(out.loc[confirmatory, "p_value"].to_numpy())
    out["outcome"] = [
        "exploratory" if e else ("not significant" if not p < ALPHA else (HIGHER if eff > 0 else LOWER))
        for e, p, eff in zip(out["exploratory"], out["p_holm"], out["effect"])
    ]
    return out[FIX_COLUMNS]


def _world(metrics, class_distances, methods, swap: list[tuple[str, str]]):
    """The tables and methods with every switched label dropped, except those of ``swap``
    (plain, switched), which take their plain partner's place (and label)."""
    switched = {label for label, entry in methods.items() if switches_on(entry)}
    rename = {s: p for p, s in swap}
    drop = (switched - set(rename)) | set(rename.values())

    def one(df):
        df = df[~df["method"].isin(drop)]
        return df.assign(method=df["method"].replace(rename))

    kept = {label: entry for label, entry in methods.items() if label not in switched}
    return one(metrics), one(class_distances), kept


def claims_moved(
    metrics: pd.DataFrame,
    class_distances: pd.DataFrame,
    methods: dict,
    scorer: str,
    n_per_class: str,
    mixup: dict | None = None,
) -> pd.DataFrame:
    """Per switch of the run's pairs and claim of the study: the findings' verdict with the fixed
    methods (every switched variant left out) and with the switched variants in their plain
    partners' place. Columns: switch, labels, number, claim, verdict_fixed, verdict_switched, moved."""
    pairs = switch_pairs(methods)
    m, cd, kept = _world(metrics, class_distances, methods, [])
    fixed = findings(m, cd, scorer, n_per_class, mixup, kept)
    rows = []
    for name in dict.fromkeys(s for _, _, on in pairs for s in on):
        swap = [(p, s) for p, s, on in pairs if name in on]
        m, cd, kept = _world(metrics, class_distances, methods, swap)
        moved = findings(m, cd, scorer, n_per_class, mixup, kept)
        for f, w in zip(fixed.itertuples(), moved.itertuples()):
            rows.append(
                {
                    "switch": name,
                    "labels": ", ".join(s for _, s in swap),
                    "number": int(f.number),
                    "claim": f.claim,
                    "verdict_fixed": f.verdict,
                    "verdict_switched": w.verdict,
                    "moved": f.verdict != w.verdict,
                }
            )
    return pd.DataFrame(
        rows, columns=["switch", "labels", "number", "claim", "verdict_fixed", "verdict_switched", "moved"]
    )


def claims_text(moved: pd.DataFrame) -> str:
    """One sentence per switch: the claims whose verdict it moves, or that it moves none."""
    lines = []
    for name, grp in moved.groupby("switch", sort=False):
        changed = grp[grp["moved"]]
        if changed.empty:
            what = "moves no claim's verdict"
        else:
            what = "moves " + "; ".join(
                f"claim {r.number} ({r.verdict_fixed} → {r.verdict_switched})" for r in changed.itertuples()
            )
        lines.append(f"- `{name}` ({grp['labels'].iloc[0]} in place of the fixed method): {what}.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the figure


def cell_label(row, short: bool = False) -> str:
    """ "cifar10 a8 · cosine k1 · N 100 · mean" for a cell group (N: images per class, or all);
    ``short``: the distance in three letters (a panel title of the figure)."""
    npc = f"N {row['n_per_class']}"
    stat = "median" if row["statistic"] == "median_auroc" else "mean"
    ref = "" if row["reference"] == "study" else f"{row['reference']}: "
    distance = row["distance"][:3] if short else row["distance"]
    return f"{ref}{row['dataset']} a{int(row['n_anomaly'])} · {distance} k{row['k']} · {npc} · {stat}"


def _short_label(row) -> str:
    return cell_label(row, short=True)


def figure_frame(references: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The figure's points: ours (with its interval) for every compared cell, else - when no cell
    matches - the published values alone. Columns: cell, method, source ("published"/"ours"),
    value, ci_low, ci_high, verdict."""
    if len(cells):
        ours = cells.assign(
            cell=cells.apply(_short_label, axis=1), method=cells["label"], source="ours", value=cells["ours"]
        )
        pub = cells.drop_duplicates([*GROUP_KEYS, "method"])
        pub = pub[pub["published"].notna()].assign(
            cell=lambda d: d.apply(_short_label, axis=1),
            method=lambda d: [lab if m == MEAN_OF_METHODS else m for m, lab in zip(d["method"], d["label"])],
            source="published",
            value=lambda d: d["published"],
            ci_low=float("nan"),
            ci_high=float("nan"),
            verdict="",
        )
        frames = [pub, ours]
    else:
        pub = references[references["value"].notna()]
        frames = [
            pub.assign(
                cell=pub.apply(_short_label, axis=1),
                source="published",
                ci_low=float("nan"),
                ci_high=float("nan"),
                verdict="",
            )
        ]
    columns = ["cell", "method", "source", "value", "ci_low", "ci_high", "verdict"]
    return pd.concat([f[columns] for f in frames], ignore_index=True)


def reproduction_chart(references: pd.DataFrame, cells: pd.DataFrame):
    """Published (hollow diamonds) and ours (filled dots with the 95 % interval) AUROC per method,
    one panel per cell; without a matching cell, the published values alone."""
    data = figure_frame(references, cells)
    cell_order = list(dict.fromkeys(data["cell"]))
    methods = method_order(data["method"].unique())
    y = alt.Y("method:N", sort=methods, title=None)
    x = alt.X("value:Q", scale=alt.Scale(zero=False), title="AUROC")
    colour = alt.Color("method:N", scale=method_colour_scale(methods), legend=alt.Legend(title="method"))
    tip = ["method:N", "source:N", alt.Tooltip("value:Q", format=".3f"), "verdict:N"]
    published = (
        alt.Chart()
        .transform_filter("datum.source == 'published'")
        .mark_point(shape="diamond", size=70, filled=False, strokeWidth=1.5)
    )
    ours = alt.Chart().transform_filter("datum.source == 'ours'")
    layers = [published.encode(x=x, y=y, color=colour, tooltip=tip)]
    if len(cells):
        layers += [
            ours.mark_rule().encode(x=alt.X("ci_low:Q"), x2="ci_high:Q", y=y, color=colour),
            ours.mark_point(filled=True, size=35).encode(x=x, y=y, color=colour, tooltip=tip),
        ]
    chart = alt.layer(*layers, data=data).properties(width=PANEL_WIDTH, height=max(48, 12 * len(methods)))
    chart = chart.facet(
        facet=alt.Facet(
            "cell:N", sort=cell_order, title=None, header=alt.Header(labelLimit=PANEL_WIDTH + 40, labelFontSize=10)
        ),
        columns=min(FIGURE_COLUMNS, len(cell_order)),
    )
    subtitle = (
        ["hollow diamond: published; dot and bar: this run's value over cases and its 95 % interval"]
        if len(cells)
        else [
            "the published values alone: no cell of this run matches one;",
            f"{study_metadata()['matching_config']} runs the study's grid",
        ]
    )
    return titled(chart, "Published and this run's AUROC per method", subtitle)


# --------------------------------------------------------------------------- declarations


def _methods(v) -> dict:
    return v.config["methods"]


def _refs(v) -> pd.DataFrame:
    return matching_rows(v.config)


def _cells(v) -> pd.DataFrame:
    return comparison_table(_refs(v), v.t["metrics"], _methods(v))


def _order(v) -> pd.DataFrame:
    return order_table(_refs(v), v.t["metrics"], _methods(v))


def _n_classes(v) -> dict:
    cd = v.t["class_distances"]
    return {str(ds): int(n) for ds, n in cd.groupby("dataset")["class_index"].nunique().items()}


def _fixes(v) -> pd.DataFrame:
    return fixes_table(v.t["metrics"], _methods(v), v.scorer, v.n, _n_classes(v))


def claims_moved_of(v) -> pd.DataFrame:
    return claims_moved(v.t["metrics"], v.t["class_distances"], _methods(v), v.scorer, v.n, mixup_runs(v.config))


def _figure(v):
    cells = _cells(v) if needs_match(v.config) is None else pd.DataFrame(columns=CELL_COLUMNS)
    refs = reference_frame(v.config)
    return reproduction_chart(refs, cells)


def _cells_shown(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["cell"] = out.apply(cell_label, axis=1) if len(out) else []
    out["published_text"] = [
        f"{p:.3f}" if not math.isnan(p) else f"< {b:.2f}" for p, b in zip(out["published"], out["upper_bound"])
    ]
    out["interval"] = [
        "—" if math.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(out["ci_low"], out["ci_high"])
    ]
    out["verdict_text"] = [f"{v} ({b})" if v == AGREES else v for v, b in zip(out["verdict"], out["basis"])]
    return out


def _order_shown(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["cell"] = out.apply(cell_label, axis=1) if len(out) else []
    return out


def _fixes_shown(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["condition"] = [f"{d} a{n}" for d, n in zip(out["dataset"], out["n_anomaly"])]
    out["interval"] = [f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(out["ci_low"], out["ci_high"])]
    return out


FIGURES = (
    Figure(
        "fig-reproduction",
        "Published AUROC (hollow diamonds) beside this run's (dots: the mean or median over cases as the "
        "reference states it, bars: its 95 % interval), per method and shared cell; without a shared cell, "
        "the published values alone.",
        _figure,
    ),
)
TABLES = (
    Table(
        "tbl-reproduction",
        "Every cell this run shares with a published value: published, ours over cases with its 95 % interval, "
        "the difference (ours − published) and the verdict (agrees: within our interval or the reference's "
        "tolerance; higher or lower; not comparable: the reference gives a bound only).",
        _cells,
        needs=needs_match,
        columns=(
            Column("cell", "cell", None, 2.4),
            Column("label", "method", None, 1.2),
            Column("published_text", "published", None, 0.7),
            Column("ours", "ours", ".3f", 0.6),
            Column("interval", "95 % CI", None, 1.1),
            Column("difference", "difference", "+.3f", 0.7),
            Column("verdict_text", "verdict", None, 1.3),
        ),
        small=True,
        shown=_cells_shown,
    ),
    Table(
        "tbl-reproduction-order",
        "Whether the methods come in the published order, per shared cell: Spearman's rank correlation of the "
        "published values with ours (each head once: its variants without a switch), and the pairs whose order "
        "flips beyond both tolerances (published gap above the two tolerances, our per-case difference's 95 % "
        "interval on the other side of 0).",
        _order,
        needs=needs_match,
        columns=(
            Column("cell", "cell", None, 2.4),
            Column("n_methods", "methods", "d", 0.6),
            Column("spearman", "Spearman", "+.2f", 0.7),
            Column("order", "order", None, 0.7),
            Column("flips", "flipped pairs", None, 3.6),
        ),
        small=True,
        shown=_order_shown,
    ),
    Table(
        "tbl-reproduction-settings",
        "Where this run's setting differs from the study's, read from the run's config (the study's from "
        "src/dmlbench/references/study.yaml; unknown: the article does not state it). The switches turn on what "
        "the original implementation did (docs/original.md).",
        lambda v: settings_table(v.config),
        columns=(
            Column("setting", "setting", None, 1.4),
            Column("reference", "the study", None, 2.6),
            Column("this_run", "this run", None, 2.0),
            Column("differs", "differs", None, 0.6),
        ),
    ),
    Table(
        "tbl-reproduction-fixes",
        "What each switch of the original implementation changes: AUROC of the switched variant minus the same "
        "method without it, per condition (mean over cases, 95 % interval, exact sign-flip p, Holm-adjusted "
        "within the table).",
        _fixes,
        needs=needs_pairs,
        columns=(
            Column("switches", "switches", None, 1.3),
            Column("method", "method", None, 1.6),
            Column("against", "against", None, 1.1),
            Column("condition", "condition", None, 0.9),
            Column("effect", "effect", "+.3f", 0.7),
            Column("interval", "95 % CI", None, 1.2),
            Column("n_tested", "cases", "d", 0.5),
            Column("p_value", "p (sign-flip)", "p", 0.7),
            Column("p_holm", "p (Holm)", "p", 0.7),
            Column("outcome", "outcome", None, 0.9),
        ),
        small=True,
        shown=_fixes_shown,
    ),
)
