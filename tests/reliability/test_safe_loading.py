"""Safe loading: no input file can run code.

- Config YAML is read with yaml.safe_load: a `!!python/object/apply` tag is refused, not run.
- npz files (prepared datasets, embeddings) are read with allow_pickle=False: an object array
  (a pickle inside the npz) is refused, not unpickled.
- CIFAR-10 pickles go through a restricted unpickler; that is tested in
  tests/unit/data/test_sources.py::test_cifar10_refuses_pickle_that_runs_code (not repeated here).
- No torch checkpoint is read today; a source scan keeps every future `torch.load(` on
  weights_only=True and every `pickle.load` / `yaml.load(` inside the restricted unpickler.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.conftest import ROOT, sm_env

SRC = ROOT / "src" / "dmlbench"


class _Payload:
    """Unpickling this object creates the file named by `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _cli(args, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "dmlbench.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=sm_env(),
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_yaml_python_tag_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "PWNED"
    config = tmp_path / "evil.yaml"
    config.write_text(
        f'x: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ["{marker}"]]\n'
        "conditions: [{dataset: digits, n_anomaly: [3]}]\ndatasets: {digits: {source: digits}}\n"
    )
    message = _cli(["validate", "--config", config], tmp_path)
    assert str(config) in message and "not valid YAML" in message
    assert not marker.exists()


def test_yaml_python_tag_through_snakemake_does_not_run(tmp_path):
    """Snakemake reads --configfile itself (before our validation): it must not run it either."""
    from tests.reliability.conftest import snakemake

    marker = tmp_path / "PWNED"
    config = tmp_path / "evil.yaml"
    config.write_text(
        f'x: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ["{marker}"]]\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(work, "--configfile", str(config), "-n", check=False)
    assert proc.returncode != 0
    assert not marker.exists()


def _npz_with_object_array(path: Path, marker: Path, **arrays):
    np.savez(path, **arrays, classes=np.array([_Payload(marker)], dtype=object))


def test_prepared_npz_with_an_object_array_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    npz = tmp_path / "digits.npz"
    _npz_with_object_array(
        npz,
        marker,
        x_train=np.zeros((2, 4, 4, 1), np.uint8),
        y_train=np.zeros(2, np.int64),
        x_test=np.zeros((2, 4, 4, 1), np.uint8),
        y_test=np.zeros(2, np.int64),
    )
    message = _cli(
        [
            "train",
            "--config",
            ROOT / "config/test.yaml",
            "--dataset",
            "digits",
            "--n-anomaly",
            "3",
            "--method",
            "conventional",
            "--data",
            npz,
            "--out",
            tmp_path / "run",
        ],
        tmp_path,
    )
    assert str(npz) in message and "allow_pickle" in message
    assert not marker.exists()


def test_embeddings_npz_with_an_object_array_is_refused(tmp_path):
    from dmlbench.errors import DmlbenchError
    from dmlbench.score.run import load_run

    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"classes": ["a"], "cases": []}))
    _npz_with_object_array(run / "embeddings.npz", marker, test_labels=np.zeros(2, np.int64))
    with pytest.raises(DmlbenchError, match="embeddings.npz is corrupt"):
        load_run(run)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# source scan


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _enclosing_class(tree: ast.AST, target: ast.AST) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(n is target for n in ast.walk(node)):
            return node.name
    return None


def test_source_loads_nothing_unsafely():
    problems = []
    files = sorted(SRC.rglob("*.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text())
        rel = path.relative_to(ROOT)
        for call, name in _calls(tree):
            where = f"{rel}:{call.lineno}: {ast.unparse(call)[:100]}"
            keywords = {k.arg: k.value for k in call.keywords}
            if name.endswith("torch.load") or name == "load" and "torch" in ast.unparse(call):
                w = keywords.get("weights_only")
                if not (isinstance(w, ast.Constant) and w.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            if name in ("yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.full_load"):
                loader = keywords.get("Loader")
                if not (loader is not None and "SafeLoader" in ast.unparse(loader)):
                    problems.append(f"{where}: yaml loaded without SafeLoader (use yaml.safe_load)")
            if name in (
                "pickle.load",
                "pickle.loads",
                "pickle.Unpickler",
                "cloudpickle.load",
                "joblib.load",
                "dill.load",
                "torch.serialization.load",
            ):
                problems.append(f"{where}: unrestricted unpickling")
            if name.endswith(".load") and "Unpickler" in name and _enclosing_class(tree, call) is None:
                if "_RestrictedUnpickler" not in name:
                    problems.append(f"{where}: an unpickler that is not the restricted one")
            if name in ("np.load", "numpy.load"):
                ap = keywords.get("allow_pickle")
                if not (isinstance(ap, ast.Constant) and ap.value is False):
                    problems.append(f"{where}: np.load without allow_pickle=False")
            if name in ("eval", "exec"):
                problems.append(f"{where}: eval/exec")
    assert not problems, "\n".join(problems)


def test_source_scan_sees_what_it_looks_for(tmp_path):
    """The scan above is not vacuous: the calls it must catch are found in a sample."""
    sample = (
        "import torch, yaml, pickle, numpy as np\n"
        "torch.load('m.pt')\nyaml.load(open('c'))\npickle.load(open('p','rb'))\nnp.load('x.npz')\n"
    )
    names = [name for _, name in _calls(ast.parse(sample))]
    assert {"torch.load", "yaml.load", "pickle.load", "np.load"} <= set(names)


def test_the_only_unpickler_is_the_restricted_one():
    text = (SRC / "data" / "sources.py").read_text()
    assert "class _RestrictedUnpickler(pickle.Unpickler)" in text
    assert "def find_class" in text
    for path in SRC.rglob("*.py"):
        for line in path.read_text().splitlines():
            if "Unpickler(" in line and "class _RestrictedUnpickler" not in line:
                assert "_RestrictedUnpickler(" in line, f"{path}: {line.strip()}"
