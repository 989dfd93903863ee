"""config/README.md (what the Snakemake workflow catalog shows as the config's documentation) is
written from the schema's descriptions and the configs' leading comments: it cannot drift."""

from pathlib import Path

from dmlbench.config import load_schema
from dmlbench.config.readme import README, text

ROOT = Path(__file__).resolve().parents[3]


def test_config_readme_is_the_schemas():
    assert README == ROOT / "config" / "README.md"
    assert README.read_text() == text(), (
        "config/README.md differs from the schema's descriptions: run `python -m dmlbench.config.readme`"
    )


def test_every_key_of_the_schema_is_in_it_with_its_description():
    readme = README.read_text()
    schema = load_schema()
    for key, node in schema["properties"].items():
        assert f"| `{key}` |" in readme
        assert " ".join(node["description"].split()) in readme.replace("\\|", "|"), key
    lr = schema["properties"]["training"]["properties"]["lr"]["default"]
    assert f"| `training.lr` | number | `{lr}` | Peak learning rate" in readme
    assert "| `arcface.margin` |" in readme  # the heads' parameters
    assert "- `demo.yaml`: The embedded default" in readme
