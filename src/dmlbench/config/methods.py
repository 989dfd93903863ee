"""Method entries of the config: labels, their heads, variants and sweeps (torch-free).

A method entry is a label that names its head and that head's parameters:

    methods:
      conventional: {}                              # label = head name
      arcface_m03: {head: arcface, margin: 0.3}     # a variant: its own label, its head named
      cosface: {margin: [0.2, 0.35, 0.5]}           # a sweep: one variant per value
      supcon: {head: pml, loss: SupConLoss, temperature: 0.1}   # a pytorch-metric-learning loss

A list where a number is expected is a sweep: the entry becomes one variant per value (per
combination, for several lists), labelled ``<key>_<parameter><value>`` (``cosface_margin0.35``,
``arcface_margin0.3_scale16``), each carrying ``sweep: <key>`` so the report can plot the
group against the swept parameter. Every expanded value is checked as a single value would
be. The expanded config holds only single values, so validating it again changes nothing (the
snapshot the report reads is validated again).

Labels are folder names (results/runs/.../<label>/...) and Snakemake wildcard values, so they
are letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable
from typing import Any

from dmlbench import METHOD_ORDER
from dmlbench.config import head_params, pml_params
from dmlbench.config.switches import STAGE_SWITCHES, SWITCHES, applies
from dmlbench.errors import ConfigError

PML = "pml"
MIXUP_KEYS = ("mixup", "mixup_alpha")
#: The original implementation's switches (dmlbench.config.switches): boolean keys of an entry.
SWITCH_KEYS = tuple(SWITCHES)
#: Keys of an entry that are not head parameters.
ENTRY_KEYS = ("head", "sweep", *MIXUP_KEYS, *SWITCH_KEYS)
PML_KEYS = ("loss", "miner")
#: Keys of an entry that the trainer reads (mixup, the train-stage switches), not the head.
TRAINING_KEYS = (*MIXUP_KEYS, *STAGE_SWITCHES["train"])
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def heads() -> list[str]:
    """The heads a method entry can name: dmlbench's six, then ``pml``."""
    return list(head_params.HEAD_PARAMS) + [PML]


def value_text(value: Any) -> str:
    """A swept value as it appears in a label: ``0.35``, ``16``, ``1e-05``, ``semihard``."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, "g").replace("e+", "e")
    return str(value)


# --------------------------------------------------------------------------- one variant


def _check_head_parameters(label: str, entry: dict, head: str, defaults: dict[str, Any], names: dict[str, str]) -> dict:
    """A variant of one of dmlbench's heads: every parameter declared by the head and in its
    range; the head's defaults (``defaults``, the schema's) filled in. ``names`` names a
    parameter in messages (a swept value by its place in the list)."""
    declared = head_params.HEAD_PARAMS[head]
    for key in PML_KEYS:
        if key in entry:
            raise ConfigError(
                f"methods.{label}.{key}: `{key}` is for head 'pml' (a pytorch-metric-learning loss), "
                f"not head '{head}'; remove it or set head: pml"
            )
    for key, value in entry.items():
        if key in ENTRY_KEYS:
            continue
        where = names.get(key, f"methods.{label}.{key}")
        if key not in declared:
            allowed = ", ".join(list(declared) + list(MIXUP_KEYS))
            guess = difflib.get_close_matches(key, list(declared) + list(MIXUP_KEYS), n=1, cutoff=0.6)
            maybe = f"; did you mean '{guess[0]}'?" if guess else ""
            raise ConfigError(f"{where}: head '{head}' takes no parameter '{key}'{maybe} (its parameters: {allowed})")
        param = declared[key]
        try:
            head_params.check_value(head, key, value, where=where)
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}; head '{head}' takes {key} in {param.interval()} (default {param.default}): "
                f"give a value in that range, or leave {key} out for the default"
            ) from None
    head_keys = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    head_params.check_combination(head, head_params.resolve(head, head_keys), where=f"methods.{label}")
    filled = dict(entry)
    for key, default in defaults.items():
        filled.setdefault(key, default)
    return filled


def _miner(label: str, miner: Any) -> dict | None:
    """``miner: TripletMarginMiner`` or ``miner: {name: TripletMarginMiner, margin: 0.2}``, checked
    and filled: ``{name: ..., <argument>: ...}``."""
    where = f"methods.{label}.miner"
    if miner is None:
        return None
    if isinstance(miner, str):
        miner = {"name": miner}
    if not isinstance(miner, dict) or "name" not in miner:
        raise ConfigError(
            f"{where} must be a miner's class name or a mapping with `name` and its arguments "
            f"(e.g. {{name: TripletMarginMiner, margin: 0.2}}), got {miner!r}"
        )
    arguments = {k: v for k, v in miner.items() if k != "name"}
    return {"name": miner["name"], **pml_params.check_arguments("miner", miner["name"], arguments, where)}


def _check_pml(label: str, entry: dict, names: dict[str, str]) -> dict:
    """A pytorch-metric-learning variant: its loss and miner known to the installed PML, every
    argument one the constructor takes and of its type; no mixup (PML losses give no per-sample
    loss to mix); the constructor's defaults filled in."""
    pml_params.check_version(f"methods.{label}")
    if "loss" not in entry:
        raise ConfigError(
            f"methods.{label}.loss: head 'pml' needs the class name of a pytorch-metric-learning "
            f"loss, e.g. loss: SupConLoss"
        )
    if entry.get("mixup"):
        raise ConfigError(
            f"methods.{label}.mixup: mixup combines a per-sample loss over two labels, which "
            f"pytorch-metric-learning losses do not give; remove it (annex A.2's `annex.mixup: true` "
            f"leaves these methods without mixup)"
        )
    arguments = {k: v for k, v in entry.items() if k not in ENTRY_KEYS + PML_KEYS}
    filled = pml_params.check_arguments("loss", entry["loss"], arguments, f"methods.{label}", names)
    out = {k: v for k, v in entry.items() if k in ENTRY_KEYS or k == "loss"}
    miner = _miner(label, entry.get("miner"))
    if miner is not None:
        out["miner"] = miner
    return {**out, **filled}


def _check_switches(label: str, entry: dict, head: str, names: dict[str, str]) -> dict:
    """The entry with its switches checked: each a boolean, on a head it applies to. A switch
    set to false is dropped, so that it gives the spec (and the run) of the entry without it."""
    out = dict(entry)
    for name in SWITCH_KEYS:
        if name not in entry:
            continue
        where, value = names.get(name, f"methods.{label}.{name}"), entry[name]
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false (a switch of the original implementation), got {value!r}")
        if not value:
            del out[name]
            continue
        if not applies(name, head):
            heads = ", ".join(SWITCHES[name].heads or ())
            raise ConfigError(
                f"{where}: switch '{name}' applies to head {heads} only, not head '{head}' "
                f"(the original code: {SWITCHES[name].original}); remove it from this entry "
                f"(docs/original.md)"
            )
    return out


def check_variant(label: str, entry: dict, head_defaults: dict[str, dict], names: dict[str, str] | None = None) -> dict:
    """One variant (single values only), checked and with its defaults filled in; ``names`` maps
    a parameter to how messages name it (default ``methods.<label>.<parameter>``). Switches set
    to false are dropped."""
    head, names = entry["head"], names or {}
    entry = _check_switches(label, entry, head, names)
    if head == PML:
        return _check_pml(label, entry, names)
    return _check_head_parameters(label, entry, head, head_defaults.get(head, head_params.defaults(head)), names)


# --------------------------------------------------------------------------- sweeps


def _swept(key: str, entry: dict) -> list[tuple[str, list]]:
    """The entry's lists (parameter, values), each value checked to be a single value."""
    swept = []
    for param, values in entry.items():
        if param in ("head", "sweep", "loss", "miner") or not isinstance(values, list):
            continue
        if not values:
            raise ConfigError(f"methods.{key}.{param}: an empty list sweeps nothing; give one or more values")
        for i, v in enumerate(values):
            if isinstance(v, (list, dict)) or v is None:
                raise ConfigError(f"methods.{key}.{param}[{i}]: a sweep lists single values, got {v!r}")
        texts = [value_text(v) for v in values]
        repeated = sorted({t for t in texts if texts.count(t) > 1})
        if repeated:
            raise ConfigError(
                f"methods.{key}.{param}: the sweep lists {repeated[0]} more than once; give each value once"
            )
        swept.append((param, values))
    return swept


def _head(key: str, entry: dict) -> str:
    head = entry.get("head", key)
    known = heads()
    if head not in known:
        if "head" in entry:
            raise ConfigError(f"methods.{key}.head: unknown head {head!r}; known: {', '.join(known)}")
        raise ConfigError(
            f"methods.{key}.head is missing: '{key}' is not a head, so the entry must name its head "
            f"(e.g. {key}: {{head: arcface, margin: 0.3}}); known heads: {', '.join(known)}"
        )
    return head


def expand(methods: dict, head_defaults: dict[str, dict] | None = None) -> dict[str, dict]:
    """The config's ``methods`` as variants: label -> entry with ``head`` set, single values only,
    defaults filled (``head_defaults``: head -> parameter -> default; the heads' declarations
    when not given), in the config's order, each sweep's variants in the order of its values.
    ConfigError naming the key for an unknown head, loss or parameter, a bad value (a swept one
    named with its position), a label unsafe in a path, or two variants with one label."""
    head_defaults = head_defaults or {}
    out: dict[str, dict] = {}
    origin: dict[str, str] = {}
    for key, entry in methods.items():
        if not isinstance(key, str) or not LABEL.match(key):
            raise ConfigError(
                f"methods.{key}: a method label is a folder name: letters, digits, '_', '.', '-', "
                f"starting with a letter or digit"
            )
        entry = dict(entry or {})
        entry = {"head": _head(key, entry), **{k: v for k, v in entry.items() if k != "head"}}
        swept = _swept(key, entry)
        if swept and "sweep" in entry:
            lists = ", ".join(f"methods.{key}.{p}" for p, _ in swept)
            raise ConfigError(
                f"methods.{key}.sweep: an entry with lists ({lists}) is a sweep of its own (named "
                f"'{key}'); remove `sweep`, or give those keys single values"
            )
        if swept:
            names = [p for p, _ in swept]
            for i_values in itertools.product(*(list(enumerate(v)) for _, v in swept)):
                combo = {p: v for p, (_, v) in zip(names, i_values)}
                label = key + "".join(f"_{p}{value_text(v)}" for p, v in combo.items())
                # a parameter is named as the user wrote it: under the entry's key, a swept value by
                # its place in the list
                where = {p: f"methods.{key}.{p}" for p in entry}
                where.update({p: f"methods.{key}.{p}[{i}]" for p, (i, _) in zip(names, i_values)})
                _add(
                    out,
                    origin,
                    label,
                    check_variant(label, {**entry, **combo, "sweep": key}, head_defaults, where),
                    key,
                )
        else:
            _add(out, origin, key, check_variant(key, entry, head_defaults), key)
    return out


def _add(out: dict, origin: dict, label: str, entry: dict, key: str) -> None:
    if label in out:
        raise ConfigError(
            f"methods.{key}: its variant label '{label}' is also made by methods.{origin[label]}; rename one of them"
        )
    if not LABEL.match(label):
        raise ConfigError(
            f"methods.{key}: the variant label '{label}' is not a safe folder name; "
            f"sweep values must be numbers or plain words"
        )
    out[label], origin[label] = entry, key


# --------------------------------------------------------------------------- reading variants


def head_of(label: str, methods: dict | None = None) -> str | None:
    """The head of ``label``: from its entry when ``methods`` has it, else the label itself when
    it is a head name, else the head it starts with (``arcface_margin0.3``), else None."""
    if methods and label in methods:
        return methods[label].get("head", label)
    if label in heads():
        return label
    prefixes = [h for h in heads() if label.startswith(h + "_")]
    return max(prefixes, key=len) if prefixes else None


def family(label: str, methods: dict | None = None) -> str:
    """The group a label's colour and place come from: its head, or ``pml:<loss>`` for a PML
    loss (two losses are two families), or the label itself when its head is unknown."""
    head = head_of(label, methods)
    if head == PML:
        loss = (methods or {}).get(label, {}).get("loss")
        return f"{PML}:{loss}" if loss else label
    return head or label


def has_logits(entry: dict) -> bool:
    """Does a variant's head give logits (and so MSP, max logit and energy)? Every head of
    dmlbench does; a PML loss when it has ``get_logits``."""
    return entry.get("head") != PML or pml_params.has_logits(entry["loss"])


def mixes(entry: dict) -> bool:
    """Can a variant train with mixup (a per-sample loss)? Not the PML losses."""
    return entry.get("head") != PML


def method_order(labels: Iterable[str], methods: dict | None = None) -> list[str]:
    """``labels`` grouped by head in the study's order (conventional, l2softmax, arcface, cosface,
    sphereface, centerloss), then the PML losses by loss name, then labels of unknown head
    alphabetically. Within a head: the config's order when ``methods`` has the labels (a sweep's
    values as listed), else the head's own label first, then alphabetically."""
    labels = list(dict.fromkeys(labels))
    position = {label: i for i, label in enumerate(methods or {})}

    def key(label: str):
        head, fam = head_of(label, methods), family(label, methods)
        within = (position[label], "") if label in position else (-1 if label == head else len(position), label)
        if head in METHOD_ORDER:
            return (0, METHOD_ORDER.index(head), "", within)
        if head == PML:
            return (1, 0, fam, within)
        return (2, 0, label, within)

    return sorted(labels, key=key)


def sweeps(methods: dict) -> dict[str, dict]:
    """The sweep groups of an expanded ``methods``: group -> {"head", "labels" (in order),
    "params" (the parameters whose values differ among the labels, in entry order),
    "values" (label -> parameter -> value)}. Groups of one variant, or whose variants differ
    in no parameter, are left out: there is nothing to plot."""
    groups: dict[str, list[str]] = {}
    for label, entry in methods.items():
        if entry.get("sweep"):
            groups.setdefault(entry["sweep"], []).append(label)
    out = {}
    for group, labels in groups.items():
        keys = [k for k in methods[labels[0]] if k not in ("head", "sweep", "loss", "miner")]
        params = [k for k in keys if len({value_text(methods[lab].get(k)) for lab in labels}) > 1]
        if len(labels) < 2 or not params:
            continue
        out[group] = {
            "head": methods[labels[0]]["head"],
            "labels": labels,
            "params": params,
            "values": {lab: {p: methods[lab].get(p) for p in params} for lab in labels},
        }
    return out
