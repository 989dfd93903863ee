"""config/README.md, written from the config schema's descriptions (the file the Snakemake
workflow catalog shows as the config's documentation), so that it cannot drift from the schema: a
test compares the file with :func:`text`. Rewrite it with ``python -m dmlbench.config.readme``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dmlbench.config.validation import load_schema
from dmlbench.io import write_text

#: The file, in the checkout.
README = Path(__file__).resolve().parents[3] / "config" / "README.md"


def _one_line(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(node: dict) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "anyOf" in node:
        return " or ".join(_type(sub) for sub in node["anyOf"])
    kind = node.get("type", "")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"list of {_type(node['items']) or 'values'}"
    return kind


def _default(node: dict) -> str:
    if "default" not in node:
        return ""
    return f"`{json.dumps(node['default'])}`"


def _rows(node: dict, root: dict, prefix: str) -> list[str]:
    rows = []
    for key, sub in node.get("properties", {}).items():
        if "$ref" in sub:
            target = root
            for part in sub["$ref"].lstrip("#/").split("/"):
                target = target[part]
            sub = {**target, **{k: v for k, v in sub.items() if k != "$ref"}}
        path = f"{prefix}{key}"
        rows.append(f"| `{path}` | {_type(sub)} | {_default(sub)} | {_one_line(sub.get('description', ''))} |")
        rows += _rows(sub, root, f"{path}.")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("description"):
            rows.append(f"| `{path}.<name>` | {_type(extra)} | | {_one_line(extra['description'])} |")
            rows += _rows(extra, root, f"{path}.<name>.")
        items = sub.get("items")
        if isinstance(items, dict) and items.get("properties"):
            rows += _rows(items, root, f"{path}[].")
    return rows


def text(schema: dict | None = None, configs: Path | None = None) -> str:
    """The README: the shipped configs (each one's leading comment), then every key of the
    schema with its type, default and description; the heads' parameters after them."""
    schema = schema or load_schema()
    configs = configs or README.parent
    lines = [
        "# Configuration",
        "",
        "<!-- Written by `python -m dmlbench.config.readme` from schemas/config.schema.yaml; do not edit:",
        "     tests/unit/config/test_readme.py compares this file with the schema. -->",
        "",
        _one_line(schema.get("description", "")),
        "",
        "Check a config, and see it with every default filled in: `dmlbench validate --config <file>`.",
        "Run one: `snakemake --cores 8 --configfile <file>` (without `--configfile`: config/config.yaml).",
        "",
        "## The configs shipped here",
        "",
    ]
    for path in sorted(configs.glob("*.yaml")):
        head = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            head.append(line.lstrip("#").strip())
        lines.append(f"- `{path.name}`: {_one_line(' '.join(head))}")
    lines += ["", "## Keys", "", "| key | type | default | description |", "|---|---|---|---|"]
    lines += _rows(schema, schema, "")
    heads = schema.get("definitions", {}).get("heads", {})
    if heads:
        lines += ["", "## The heads' parameters", "", _one_line(heads.get("description", "")), ""]
        lines += ["| head.parameter | type | default | description |", "|---|---|---|---|"]
        for head, entry in heads.get("properties", {}).items():
            lines.append(f"| `{head}` | | | {_one_line(entry.get('description', ''))} |")
            lines += _rows(entry, schema, f"{head}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else README
    write_text(out, text())
    print(out)
