"""Random mutations of config/test.yaml: each is valid, or refused with a ConfigError that
names the mutated key by its dotted path (e.g. `training.lr`, `conditions.0.n_anomaly`).

Mutations, at any depth: delete a key or list item, set a value to one of another type, add
an unknown key, set an enum to a random string. The base is config/test.yaml as written or
with every default filled in (so that keys test.yaml leaves out, like `model.backbone` or
`datasets.digits.class_order`, are mutated too).

Where a deletion breaks a rule about the container (a list must keep one item, a mapping one
key), the error names the container of the deleted key: deleting `seeds.0` gives "config key
'seeds': [] should be non-empty". Where a deletion removes a list item another key refers to
(deleting `scoring.k.0`, k = 1, leaves `report.scorer: cosine_k1` uncomputed), the error names
the referring key and the list. Those are the two accepted exceptions.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmlbench.config import load_schema, validate
from dmlbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
FILLED = validate(copy.deepcopy(RAW))
#: Rules about a container rather than the key inside it.
CONTAINER_RULES = ("is too short", "does not have enough properties", "should be non-empty")
#: Keys whose value refers to items of a list elsewhere (report.scorer: a distance and a k).
REFERRING_KEYS = ("report.scorer",)


def _paths(node, prefix=()):
    """Every (path, value) under node, depth first, the root excluded."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        yield prefix + (key,), value
        yield from _paths(value, prefix + (key,))


def _enum_paths(schema):
    """Dotted patterns (`*` for any name or index) of the enum-valued keys of the schema."""
    out = set()

    def walk(s, path):
        if "$ref" in s:
            node = schema
            for part in s["$ref"].lstrip("#/").split("/"):
                node = node[part]
            s = node
        if "enum" in s:
            out.add(path)
        for k, sub in s.get("properties", {}).items():
            walk(sub, path + (k,))
        if isinstance(s.get("additionalProperties"), dict):
            walk(s["additionalProperties"], path + ("*",))
        if isinstance(s.get("items"), dict):
            walk(s["items"], path + ("*",))
        for sub in s.get("anyOf", []):
            walk(sub, path)

    walk(schema, ())
    return out


ENUMS = _enum_paths(load_schema())


def _is_enum(path) -> bool:
    return any(len(p) == len(path) and all(a == "*" or a == str(b) for a, b in zip(p, path)) for p in ENUMS)


def _json_type(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


KEYS = st.text(st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1, max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=6
)


@st.composite
def mutations(draw):
    base = copy.deepcopy(draw(st.sampled_from([RAW, FILLED])))
    paths = list(_paths(base))
    kind = draw(st.sampled_from(["delete", "retype", "add", "enum"]))
    if kind == "add":
        containers = [((), base)] + [(p, v) for p, v in paths if isinstance(v, dict)]
        path, node = draw(st.sampled_from(containers))
        key = draw(KEYS.filter(lambda k: k not in node))
        node[key] = draw(VALUES)
        return base, path + (key,), kind
    if kind == "enum":
        candidates = [(p, v) for p, v in paths if _is_enum(p)]
        path, _ = draw(st.sampled_from(candidates))
        value = draw(st.text(max_size=12))
    else:
        path, old = draw(st.sampled_from(paths))
        if kind == "retype":
            value = draw(VALUES.filter(lambda v: _json_type(v) != _json_type(old)))
    parent = base
    for p in path[:-1]:
        parent = parent[p]
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return base, path, kind


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutated_config_is_valid_or_names_the_key(mutation):
    config, path, kind = mutation
    dotted = ".".join(map(str, path))
    # the messages name a list's item by its index: methods.arcface.margin[0]
    indexed = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))
    try:
        validate(config)
    except ConfigError as exc:
        message = str(exc)
        if dotted in message or indexed in message:
            return
        parent = ".".join(map(str, path[:-1]))
        named_rule = any(r in message for r in CONTAINER_RULES + REFERRING_KEYS)
        if isinstance(path[-1], int) and parent and f"'{parent}'" in message and "[" in message:
            return  # an item of a list (a sweep): the message names the list and shows its values
        assert kind == "delete" and named_rule and (parent == "" or parent in message), (
            f"mutated {dotted!r} ({kind}); message:\n{message}"
        )
    # any other exception (KeyError, TypeError, ...) escapes and fails the test


def test_non_finite_numbers_are_named():
    cfg = copy.deepcopy(RAW)
    cfg["training"]["weight_decay"] = math.inf
    try:
        validate(cfg)
    except ConfigError as exc:
        assert "training.weight_decay" in str(exc) and "finite" in str(exc)
    else:
        raise AssertionError("an infinite weight_decay was accepted")
