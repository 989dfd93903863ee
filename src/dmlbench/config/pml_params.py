"""pytorch-metric-learning losses and miners as methods: their names and arguments, without torch.

A method entry ``{head: pml, loss: SupConLoss, temperature: 0.1}`` trains with
``pytorch_metric_learning.losses.SupConLoss(temperature=0.1)``. The config check must refuse a
class PML does not have, or an argument its constructor does not take, before any job - and the
workflow parses its config without importing torch (importing ``pytorch_metric_learning.losses``
takes some 4 s here, paid again in every cluster job's parse). So the check reads a table of
the installed PML's constructors, ``dmlbench.config._pml_signatures``, written by this module from the
installed package (``python -m dmlbench.config.pml_params --write``); a test keeps the table equal to
the installed PML, and the check refuses a config when the installed PML is another version
than the table's.

What the table holds per class: the constructor's own scalar arguments with their defaults
(``REQUIRED`` when it has none), walked up the class's bases down to PML's generic base; the
arguments dmlbench supplies itself (``num_classes``, ``embedding_size``, ``descriptors_dim``:
the number of normal classes and the embedding width); whether the loss has logits
(``get_logits``: the classification losses, whose logits feed MSP, max logit and energy).
Object arguments (distances, reducers, regularisers) are not configurable. The value checks
are PML's types only: a number where the default is a number, a flag where it is a flag; the
ranges are PML's own, met when the job builds the loss.
"""

from __future__ import annotations

import difflib
import inspect
import math
import pprint
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from dmlbench.config import _pml_signatures as sig
from dmlbench.errors import ConfigError
from dmlbench.io import write_text

#: Arguments dmlbench fills in: the classes of the case and the embedding width.
SUPPLIED = ("num_classes", "embedding_size", "descriptors_dim")
REQUIRED = "<required>"
#: Counts among PML's arguments, whose default (an int) does not say that a float is refused.
INTEGER_ARGUMENTS = frozenset(
    {"sub_centers", "centers_per_class", "num_bins", "n_bins", "pos_per_bin", "neg_per_bin", "K", "l"}
)
#: Losses of the installed PML left out of the table, and why.
EXCLUDED_LOSSES = {
    "VICRegLoss": "self-supervised: it compares two views of each image and takes no labels",
    "ManifoldLoss": "unsupervised: it refuses labels",
    "SmoothAPLoss": "needs batches sorted by class in equal blocks, which the training batches are not",
    "HistogramLoss": "has no usable default (n_bins or delta must be given as a count or a step)",
}
#: Miners left out: they expect inputs the training batches are not.
EXCLUDED_MINERS = {
    "EmbeddingsAlreadyPackagedAsTriplets": "expects each batch to be a list of (anchor, positive, negative) triplets",
}


def table() -> tuple[str, dict, dict]:
    """(PML version, losses, miners) of the stored table (torch-free)."""
    return sig.PML_VERSION, sig.LOSSES, sig.MINERS


def installed_version() -> str | None:
    """The installed pytorch-metric-learning version from its metadata (no import), or None."""
    try:
        return metadata.version("pytorch-metric-learning")
    except metadata.PackageNotFoundError:
        return None


def _unknown(kind: str, name: Any, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"{where}: unknown pytorch-metric-learning {kind} {name!r}{hint} (known: {', '.join(known)})")


def _check_argument(where: str, value: Any, default: Any, name: str) -> None:
    """A scalar argument against its default's type: a flag for a flag, a finite number for a
    number (an integer for a count), a text or a number for a text (``triplets_per_anchor`` is
    "all" or a count); anything scalar where the default is None or there is none."""
    if isinstance(value, (list, dict)) or value is None and default is not None:
        raise ConfigError(f"{where} must be a single value, got {value!r}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false (its default is {default}), got {value!r}")
    elif isinstance(default, (int, float)) or name in INTEGER_ARGUMENTS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number (its default is {default!r}), got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        if name in INTEGER_ARGUMENTS and float(value) != int(value):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif (
        isinstance(default, str)
        and default != REQUIRED
        and (isinstance(value, bool) or not isinstance(value, (str, int, float)))
    ):
        raise ConfigError(f"{where} must be a text or a number (its default is {default!r}), got {value!r}")


def check_arguments(
    kind: str, name: str, arguments: dict[str, Any], where: str, names: dict[str, str] | None = None
) -> dict[str, Any]:
    """The arguments of the loss or miner ``name`` checked against the table: every name one its
    constructor takes (not one dmlbench supplies), every required one given, each value of its
    default's type. Returns the arguments with the constructor's defaults filled in.
    ConfigError naming ``where.<argument>`` (or ``names[argument]``) otherwise."""
    names = names or {}
    version, losses, miners = table()
    entries = losses if kind == "loss" else miners
    if not isinstance(name, str) or name not in entries:
        excluded = EXCLUDED_LOSSES if kind == "loss" else EXCLUDED_MINERS
        if isinstance(name, str) and name in excluded:
            raise ConfigError(
                f"{where}: pytorch-metric-learning {kind} '{name}' is not supported here: {excluded[name]}"
            )
        raise _unknown(kind, name, sorted(entries), where)
    params = entries[name]["params"]
    for key, value in arguments.items():
        if key in SUPPLIED:
            raise ConfigError(
                f"{where}.{key} is set by dmlbench (the number of normal classes and the embedding width); remove it"
            )
        named = names.get(key, f"{where}.{key}")
        if key not in params:
            allowed = ", ".join(sorted(params)) or "(none)"
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{named}: {name} takes no argument {key!r}{hint} (its arguments: {allowed})")
        _check_argument(named, value, params[key], key)
    missing = [k for k, d in params.items() if d == REQUIRED and k not in arguments]
    if missing:
        raise ConfigError(f"{where}.{missing[0]} is required by {name} (it has no default); give it")
    return {**{k: d for k, d in params.items() if d != REQUIRED}, **arguments}


def check_version(where: str) -> None:
    """Refuse a PML method when the installed PML is not the one the table was made from."""
    version, _, _ = table()
    installed = installed_version()
    if installed is None:
        raise ConfigError(
            f"{where}: head 'pml' needs pytorch-metric-learning, which is not installed; "
            f"pip install 'pytorch-metric-learning=={version}'"
        )
    if installed != version:
        raise ConfigError(
            f"{where}: the table of pytorch-metric-learning's losses was made from version {version}, "
            f"but {installed} is installed; install {version} or rewrite the table with "
            f"`python -m dmlbench.config.pml_params --write`"
        )


def has_logits(loss: str) -> bool:
    """Does the loss give logits (``get_logits``)? Pair and tuple losses do not."""
    return bool(table()[1][loss]["logits"])


def supplied(loss: str) -> list[str]:
    """The constructor arguments dmlbench fills in for ``loss``."""
    return list(table()[1][loss]["supplied"])


# --------------------------------------------------------------------------- the table, from PML


def _arguments(cls, stop: tuple) -> tuple[dict[str, Any], list[str]]:
    """Scalar constructor arguments of ``cls`` and its bases up to ``stop`` (a subclass's default
    wins), and the supplied ones it requires."""
    params: dict[str, Any] = {}
    needs: list[str] = []
    for klass in cls.__mro__:
        if klass in stop or not issubclass(klass, stop[0]):
            continue
        for p in list(inspect.signature(klass.__init__).parameters.values())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in params:
                continue
            if p.name in SUPPLIED:
                if p.default is p.empty and p.name not in needs:
                    needs.append(p.name)
                continue
            default = REQUIRED if p.default is p.empty else p.default
            if default is None or isinstance(default, (bool, int, float, str)):
                params[p.name] = default
    return params, needs


#: Values of the supplied arguments when the table is made (any small valid size).
_PROBE = {"num_classes": 3, "embedding_size": 4, "descriptors_dim": 4}


def _accepted(cls, params: dict[str, Any], supplied: dict[str, int]) -> dict[str, Any]:
    """The arguments a base declares that ``cls`` passes itself are refused when given
    (BatchHardMiner fixes BatchEasyHardMiner's strategies): keep those the constructor takes."""
    kept = {}
    for key, default in params.items():
        probe = {key: default} if default != REQUIRED else {}
        required = {k: 1 for k, d in params.items() if d == REQUIRED and k != key}
        try:
            cls(**supplied, **required, **probe)
        except TypeError as exc:
            if "multiple values" in str(exc) or "unexpected keyword" in str(exc):
                continue
        except Exception:  # a value error of the probe itself: the name is still taken
            pass
        kept[key] = default
    return kept


def introspect() -> tuple[str, dict, dict]:
    """(version, losses, miners) read from the installed pytorch-metric-learning (imports torch)."""
    import pytorch_metric_learning
    from pytorch_metric_learning import losses, miners
    from pytorch_metric_learning.losses import BaseMetricLossFunction, GenericPairLoss
    from pytorch_metric_learning.miners import BaseMiner

    loss_table, miner_table = {}, {}
    for name in sorted(dir(losses)):
        cls = getattr(losses, name)
        if (
            not inspect.isclass(cls)
            or not issubclass(cls, BaseMetricLossFunction)
            or cls in (BaseMetricLossFunction, GenericPairLoss)
            or name in EXCLUDED_LOSSES
        ):
            continue
        params, needs = _arguments(cls, (BaseMetricLossFunction, GenericPairLoss))
        params = _accepted(cls, params, {s: _PROBE[s] for s in needs})
        loss_table[name] = {"logits": hasattr(cls, "get_logits"), "supplied": needs, "params": params}
    for name in sorted(dir(miners)):
        cls = getattr(miners, name)
        if not inspect.isclass(cls) or not issubclass(cls, BaseMiner) or name in EXCLUDED_MINERS:
            continue
        if cls.__name__.startswith("Base"):
            continue
        params, _ = _arguments(cls, (BaseMiner,))
        miner_table[name] = {"params": _accepted(cls, params, {})}
    return pytorch_metric_learning.__version__, loss_table, miner_table


def write_table(path=None) -> str:
    """Write ``_pml_signatures.py`` from the installed PML; returns the path written."""
    version, loss_table, miner_table = introspect()
    path = Path(path or Path(__file__).with_name("_pml_signatures.py"))
    text = (
        '"""pytorch-metric-learning\'s loss and miner constructors (generated: do not edit).\n\n'
        "Written by `python -m dmlbench.config.pml_params --write` from the installed package; read by\n"
        'dmlbench.config.pml_params (the config check, without torch)."""\n\n'
        f"PML_VERSION = {version!r}\n\n"
        f"LOSSES = {pprint.pformat(loss_table, width=110, sort_dicts=False)}\n\n"
        f"MINERS = {pprint.pformat(miner_table, width=110, sort_dicts=False)}\n"
    )
    write_text(path, text)
    return str(path)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(
            "usage: python -m dmlbench.config.pml_params --write   (rewrites src/dmlbench/config/_pml_signatures.py)"
        )
    print(write_table())
