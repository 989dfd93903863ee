"""`dmlbench list` and `dmlbench --version` (dmlbench.config.catalog): every name a config may use,
with the defaults the config check fills in, and no torch imported to list them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dmlbench import __version__
from dmlbench.cli import main
from dmlbench.config import catalog, load_config, pml_params
from dmlbench.config.head_params import HEAD_PARAMS
from dmlbench.config.scorers import SCORERS
from dmlbench.config.sources import SOURCE_OPTIONS
from dmlbench.config.validation import load_schema
from dmlbench.errors import DatasetError

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = {"datasets": {"d": {"source": "digits"}}, "conditions": [{"dataset": "d", "n_anomaly": [1]}]}


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"dmlbench {__version__}\n"


@pytest.mark.parametrize("kind", catalog.KINDS)
def test_each_list_prints_its_entries(kind, capsys):
    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    names = [e.name for e in catalog.LISTS[kind]()]
    assert names and all(f"\n{name}: " in out for name in names)


def test_heads_list_the_defaults_a_method_entry_gets():
    """Each head's defaults are those a config without parameters is filled with."""
    heads = {e.name: e for e in catalog.heads()}
    assert list(heads) == [*HEAD_PARAMS, "pml"]
    config = load_config({**MINIMAL, "methods": {h: {} for h in HEAD_PARAMS}})
    for head in HEAD_PARAMS:
        listed = {p.name: p.default for p in heads[head].parameters}
        filled = {k: v for k, v in config["methods"][head].items() if k != "head"}
        assert listed == filled, head
    assert {p.name: p.default for p in heads["pml"].parameters} == {"loss": catalog.REQUIRED, "miner": None}


def test_arcface_as_printed(capsys):
    main(["list", "heads"])
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("arcface: Additive angular margin (Deng et al. 2019).")
    assert lines[start + 1].split() == [
        "scale",
        "=",
        "30",
        "Scale",
        "s",
        "of",
        "the",
        "logits;",
        "range",
        "(0,",
        "inf).",
    ]
    assert lines[start + 2].startswith("  margin      = 0.5    Additive angular margin m in radians; range [0, pi).")


def test_losses_and_miners_are_the_stored_pml_table():
    version, losses, miners = pml_params.table()
    listed = {e.name: e for e in catalog.losses()}
    assert list(listed) == list(losses)
    supcon = listed["SupConLoss"]
    assert {p.name: p.default for p in supcon.parameters} == losses["SupConLoss"]["params"]
    assert "no logits" in supcon.about and "logits: yes" in listed["ArcFaceLoss"].about
    assert [e.name for e in catalog.miners()] == list(miners)


def test_scorers_name_every_scoring_key_with_its_schema_default():
    scoring = load_schema()["properties"]["scoring"]["properties"]
    entries = catalog.scorers()
    assert [e.name for e in entries] == [catalog.KNN_DISTANCES, *SCORERS]
    listed = {p.name: p.default for e in entries for p in e.parameters}
    # every key but the list of scorers itself is some scorer's parameter, with the schema's default
    assert listed == {f"scoring.{k}": v["default"] for k, v in scoring.items() if k != "scorers"}


def test_sources_list_their_reader_options_and_default_roots(tmp_path, monkeypatch):
    entries = {e.name: {p.name: p.default for p in e.parameters} for e in catalog.sources()}
    assert list(entries) == list(SOURCE_OPTIONS)
    for source, options in SOURCE_OPTIONS.items():
        assert {k: entries[source][k] for k in options} == options
    assert entries["folder"]["root"] == catalog.REQUIRED and entries["cifar10"]["flip"] is True
    # the roots listed are where the readers look: an empty folder names them in the error
    from dmlbench.data.sources import load_source

    monkeypatch.chdir(tmp_path)
    for source, root in catalog.DEFAULT_ROOTS.items():
        if Path(root).is_absolute():
            continue  # Debian's Fashion-MNIST folder: it may well exist here
        with pytest.raises(DatasetError, match=root):
            load_source({"source": source})


def test_listing_imports_no_torch():
    code = (
        "import sys; from dmlbench.cli import main\n"
        "for kind in ('heads', 'losses', 'miners', 'scorers', 'sources'): main(['list', kind])\n"
        "heavy = [m for m in ('torch', 'fastai', 'sklearn', 'scipy', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
