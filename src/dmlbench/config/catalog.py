"""What a config may name, each entry with its parameters and their defaults: the heads, the
pytorch-metric-learning losses and miners, the scorers and the dataset sources (`dmlbench list`).

Read from the declarations the config check itself uses - the schema (descriptions and defaults),
dmlbench.config.head_params, the stored table of PML's constructors (dmlbench.config.pml_params),
dmlbench.config.scorers and dmlbench.config.sources - so the list is what a config is checked
against, and it needs no torch (listing takes a fraction of a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dmlbench.config import methods, pml_params
from dmlbench.config import sources as dataset_sources
from dmlbench.config.scorers import LOGIT_SCORERS, SCORERS
from dmlbench.config.validation import load_schema

KINDS = ("heads", "losses", "miners", "scorers", "sources")
#: A parameter that has no default: the entry must set it.
REQUIRED = "<required>"

#: The kNN distance scores (`{distance}_k{k}` columns) listed as one entry.
KNN_DISTANCES = "cosine_k<k>, euclidean_k<k>"
#: What each scorer computes (docs/metrics.md has the formulas).
SCORER_ABOUT = {
    KNN_DISTANCES: "mean of the k smallest distances (cosine = 1 - cos, or Euclidean) from the test embedding "
    "to the reference (training) embeddings; one score per distance and k",
    "mahalanobis": "distance to the nearest class mean under the classes' tied covariance, shrunk",
    "msp": "negated maximum softmax probability of the head's logits",
    "maxlogit": "negated maximum logit of the head",
    "energy": "free energy, -logsumexp of the head's logits (Liu et al. 2020)",
    "lof": "Local Outlier Factor of the test embedding against the reference set",
    "knn_normalised": "Euclidean distance of the L2-normalised embedding to its k-th nearest normalised "
    "reference embedding (OpenOOD's KNN, Sun et al. 2022)",
}
#: The `scoring` keys each scorer reads.
SCORER_KEYS = {
    KNN_DISTANCES: ("distances", "k"),
    "mahalanobis": ("mahalanobis_shrinkage",),
    "lof": ("lof_neighbors",),
    "knn_normalised": ("knn_normalised_k",),
}
#: Where a source's reader looks without `root` (dmlbench.data.sources; a test keeps them equal).
DEFAULT_ROOTS = {"cifar10": "data/cifar10", "mnist": "data/mnist", "fashion_mnist": "/usr/share/datasets/fashion-mnist"}
SOURCE_ABOUT = {
    "cifar10": "CIFAR-10 from its python pickles (torchvision's files), 10 classes, 32x32 RGB",
    "mnist": "MNIST from its idx(.gz) files, 10 classes, 28x28 grey",
    "fashion_mnist": "Fashion-MNIST from its idx(.gz) files, 10 classes, 28x28 grey",
    "digits": "scikit-learn's handwritten digits (ship with scikit-learn: no download), 10 classes, upscaled",
    "folder": "your images: root/train/<class>/*.png|jpg and root/test/<class>/*, classes from the folder names",
}


@dataclass(frozen=True)
class Parameter:
    """One parameter: its name, default (:data:`REQUIRED` when it has none, None for an optional
    one left unset) and what it does."""

    name: str
    default: Any
    about: str = ""


@dataclass(frozen=True)
class Entry:
    """One name a config may use, what it is and its parameters."""

    name: str
    about: str
    parameters: tuple[Parameter, ...] = ()


def _resolve(node: dict, schema: dict) -> dict:
    while "$ref" in node:
        target: Any = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _about(node: dict) -> str:
    return " ".join(str(node.get("description", "")).split())


def heads() -> list[Entry]:
    """dmlbench's heads with the schema's parameters (definitions.heads), then ``pml``."""
    schema = load_schema()
    declared = schema["definitions"]["heads"]["properties"]
    entry_keys = schema["properties"]["methods"]["additionalProperties"]["properties"]
    out = []
    for head in methods.heads():
        if head == methods.PML:
            out.append(
                Entry(
                    head,
                    "any loss of pytorch-metric-learning (`dmlbench list losses`), its keyword arguments beside "
                    "`loss` in the entry; pair and tuple losses train the embedding alone (no logits)",
                    (
                        Parameter("loss", REQUIRED, _about(entry_keys["loss"])),
                        Parameter("miner", None, _about(entry_keys["miner"]) + " (`dmlbench list miners`)"),
                    ),
                )
            )
            continue
        node = declared[head]
        params = []
        for name, sub in node["properties"].items():
            sub = _resolve(sub, schema)
            params.append(Parameter(name, sub.get("default", REQUIRED), _about(sub)))
        out.append(Entry(head, _about(node), tuple(params)))
    return out


def _pml_entries(kind: str) -> list[Entry]:
    version, losses, miners = pml_params.table()
    out = []
    for name, info in (losses if kind == "losses" else miners).items():
        params = tuple(
            Parameter(arg, REQUIRED if default == pml_params.REQUIRED else default)
            for arg, default in info["params"].items()
        )
        if kind == "losses":
            about = "logits: yes (MSP, max logit, energy apply)" if info["logits"] else "pair/tuple loss: no logits"
            if info["supplied"]:
                about += f"; set by dmlbench: {', '.join(info['supplied'])}"
        else:
            about = "a miner for pair and tuple losses"
        out.append(Entry(name, about, params))
    return out


def losses() -> list[Entry]:
    """The losses of the stored pytorch-metric-learning table, with their scalar arguments."""
    return _pml_entries("losses")


def miners() -> list[Entry]:
    """The miners of the stored pytorch-metric-learning table, with their scalar arguments."""
    return _pml_entries("miners")


def scorers() -> list[Entry]:
    """The kNN distances, then every scorer of ``scoring.scorers``, with the ``scoring`` keys each reads."""
    scoring = load_schema()["properties"]["scoring"]["properties"]
    out = []
    for name in (KNN_DISTANCES, *SCORERS):
        about = SCORER_ABOUT[name] + ("; needs the head's logits" if name in LOGIT_SCORERS else "")
        params = tuple(
            Parameter(f"scoring.{key}", scoring[key].get("default", REQUIRED), _about(scoring[key]))
            for key in SCORER_KEYS.get(name, ())
        )
        out.append(Entry(name, about, params))
    return out


def sources() -> list[Entry]:
    """The dataset sources with the options their reader takes and the pipeline's per-dataset keys."""
    props = load_schema()["properties"]["datasets"]["additionalProperties"]["properties"]
    out = []
    for source, options in dataset_sources.SOURCE_OPTIONS.items():
        params = []
        if source in dataset_sources.ROOT_SOURCES:
            params.append(Parameter("root", DEFAULT_ROOTS.get(source, REQUIRED), _about(props["root"])))
        params += [Parameter(key, default, _about(props[key])) for key, default in options.items()]
        params.append(Parameter("class_order", props["class_order"]["default"], _about(props["class_order"])))
        params.append(Parameter("flip", dataset_sources.FLIP_DEFAULT[source], "Random horizontal flips in training."))
        out.append(Entry(source, SOURCE_ABOUT[source], tuple(params)))
    return out


LISTS = {"heads": heads, "losses": losses, "miners": miners, "scorers": scorers, "sources": sources}
HEADINGS = {
    "heads": "Heads (methods.<label>.head; default: the label itself), with their parameters and defaults:",
    "losses": "pytorch-metric-learning {version} losses (methods.<label>: {{head: pml, loss: <name>, "
    "<argument>: <value>}}), with their arguments and defaults:",
    "miners": "pytorch-metric-learning {version} miners (methods.<label>.miner: <name> or {{name: <name>, "
    "<argument>: <value>}}), with their arguments and defaults:",
    "scorers": "Scorers (scoring.distances x scoring.k, then scoring.scorers), with the keys they read and "
    "their defaults:",
    "sources": "Dataset sources (datasets.<name>.source), with their options and defaults:",
}


def value_text(value: Any) -> str:
    """A default as a config would write it (YAML's spelling of true, false and null)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def text(kind: str) -> str:
    """`dmlbench list <kind>`: a heading, then per entry its name and what it is, and one line per
    parameter (name, default, what it does)."""
    if kind not in LISTS:
        raise ValueError(f"unknown list {kind!r}; one of {', '.join(KINDS)}")
    lines = [HEADINGS[kind].format(version=pml_params.table()[0]), ""]
    for entry in LISTS[kind]():
        lines.append(f"{entry.name}: {entry.about}" if entry.about else entry.name)
        width = max((len(p.name) for p in entry.parameters), default=0)
        value_width = max((len(value_text(p.default)) for p in entry.parameters), default=0)
        for p in entry.parameters:
            line = f"  {p.name.ljust(width)} = {value_text(p.default).ljust(value_width)}  {p.about}"
            lines.append(line.rstrip())
        if not entry.parameters:
            lines.append("  (no parameters)")
    return "\n".join(lines) + "\n"
