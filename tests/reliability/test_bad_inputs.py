"""Every bad input stops with one clear message that names the input and says what to do:
exit status != 0, exactly one `dmlbench <stage>: error:` line, never a traceback.

Each parametrized case is one bad input; `BAD_INPUTS` counts them (the lead reports it).
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.reliability.conftest import JOB, ROOT, sm_env, snakemake

pytestmark = pytest.mark.slow

BASE = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
TRAIN_KEYS = [
    "--dataset",
    "digits",
    "--n-anomaly",
    "3",
    "--method",
    "conventional",
    "--device",
    "cpu",
    "--threads",
    "1",
]


def dmlbench(*args, cwd: Path, subprocess_: bool = False) -> str:
    """Run `dmlbench *args` in ``cwd``; assert a clean refusal; return what it wrote to stderr.

    In-process through ``dmlbench.cli.main`` (what the `dmlbench` command runs) to spare the
    imports of a new interpreter: an exception escaping ``main`` - a bare traceback on the
    command line - fails the test. With ``subprocess_`` the installed command runs for real.
    """
    argv = [str(a) for a in args]
    if subprocess_:
        proc = subprocess.run(
            [sys.executable, "-m", "dmlbench.cli", *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=sm_env(),
            timeout=300,
        )
        returncode, stderr = proc.returncode, proc.stderr
    else:
        import torch

        from dmlbench.cli import main

        threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
        err = io.StringIO()
        try:
            with contextlib.chdir(cwd), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    returncode = main(argv)
                except SystemExit as exc:  # argparse
                    returncode = exc.code
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
        stderr = err.getvalue()
    assert returncode != 0, f"accepted:\n{stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr
    assert stderr.count(": error:") == 1, stderr
    return stderr


def config_file(tmp_path: Path, mutate=None, base=BASE) -> Path:
    cfg = copy.deepcopy(base)
    if mutate:
        mutate(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def assert_names(message: str, *parts: str) -> None:
    missing = [p for p in parts if p not in message]
    assert not missing, f"message lacks {missing}:\n{message}"


# --------------------------------------------------------------------------------------------
# config values: refused by `dmlbench validate` (the check every stage and the workflow run)


def _set(path: str, value):
    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        node[int(last) if isinstance(node, list) else last] = value

    return mutate


def _delete(path: str):
    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[int(last) if isinstance(node, list) else last]

    return mutate


CONFIG_CASES = {
    # id: (mutation, parts the message must contain)
    "unknown method": (_set("methods.triplet", {}), ["methods.triplet", "is not a head", "known heads: conventional"]),
    "unknown dataset in a condition": (
        _set("conditions.0.dataset", "svhn"),
        ["conditions.0.dataset", "'svhn'", "add it there or fix the name"],
    ),
    "unknown dataset source": (
        _set("datasets.digits.source", "imagenet"),
        ["datasets.digits.source", "allowed values: cifar10"],
    ),
    "unknown scorer distance": (
        _set("scoring.distances", ["manhattan"]),
        ["scoring.distances.0", "'manhattan'", "allowed values: cosine, euclidean"],
    ),
    "k below 1": (_set("scoring.k", [0, 5]), ["scoring.k.0", "integer >= 1 or 'all'"]),
    "k above the reference set": (
        lambda c: (c.update(n_per_class=[5]), c["scoring"].update(k=[1, 100])),
        ["scoring.k 100", "reference set", "leave 35 reference images", "use scoring.k <= 35"],
    ),
    "n_anomaly = number of classes": (
        _set("conditions.0.n_anomaly", [10]),
        ["conditions.0.n_anomaly 10", "10 classes", "1..9"],
    ),
    "n_anomaly < 1": (_set("conditions.0.n_anomaly", [0]), ["conditions.0.n_anomaly.0", "minimum of 1"]),
    "cases > classes": (_set("cases", 11), ["cases 11", "10 classes", "use cases <= 10"]),
    "n_per_class 0": (_set("n_per_class", [0]), ["n_per_class.0", "integer >= 1 or 'all'"]),
    "wrong type: string for a number": (_set("training.lr", "fast"), ["training.lr", "expected type: number"]),
    "wrong type: float for an integer": (_set("training.epochs", 2.0), ["training.epochs", "expected type: integer"]),
    "wrong type: bool for an integer": (
        _set("training.batch_size", True),
        ["training.batch_size", "expected type: integer"],
    ),
    "wrong type: mapping for a list": (_set("seeds", {"a": 1}), ["config key 'seeds'", "expected type: array"]),
    "NaN learning rate": (_set("training.lr", float("nan")), ["training.lr", "not a finite number"]),
    "missing required key": (_delete("conditions.0.n_anomaly"), ["conditions.0.n_anomaly", "required"]),
    "unknown key": (_set("training.momentum", 0.9), ["training.momentum", "allowed keys here: batch_size"]),
    "folder dataset without root": (_set("datasets.digits", {"source": "folder"}), ["datasets.digits.root"]),
    # values a component would refuse in every job: asked of its declared ranges (docs/config.md)
    "head parameter out of its range": (
        _set("methods.arcface.margin", 4.0),
        ["methods.arcface.margin must be < 3.14159 (pi)", "[0, pi)"],
    ),
    "digits split impossible": (
        _set("datasets.digits.test_fraction", 0.001),
        ["datasets.digits.test_fraction 0.001", "stratified split", "use a test_fraction"],
    ),
    "option the source ignores": (
        _set("datasets.digits.channels", 3),
        ["datasets.digits.channels is not read by source 'digits'", "remove it"],
    ),
    "report scorer not computed": (
        _set("report.scorer", "cosine_k7"),
        ["report.scorer 'cosine_k7'", "cosine_k1, cosine_k5", "set report.scorer"],
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_value(tmp_path, case):
    mutate, parts = CONFIG_CASES[case]
    config = config_file(tmp_path, mutate)
    # the installed command for one case; the others in-process (same code, no start-up cost)
    message = dmlbench("validate", "--config", config, cwd=tmp_path, subprocess_=case == "unknown method")
    assert_names(message, str(config), *parts)


def test_missing_config_file(tmp_path):
    assert_names(dmlbench("validate", "--config", tmp_path / "nope.yaml", cwd=tmp_path), "nope.yaml", "does not exist")


def test_config_that_is_not_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("conditions: [\n  - dataset: digits\n\tn_anomaly: [3]\n")
    assert_names(dmlbench("validate", "--config", bad, cwd=tmp_path), str(bad), "not valid YAML", "line")


def test_a_folder_or_binary_config_and_a_missing_folder_dataset(tmp_path):
    """Issue 28: `--config` a folder or a binary file was a traceback; a folder dataset's missing
    root passed `validate`. Each is now one line naming the path."""
    assert_names(dmlbench("validate", "--config", tmp_path, cwd=tmp_path), str(tmp_path), "is a folder")
    binary = tmp_path / "weights.pt"
    binary.write_bytes(bytes(range(256)))
    assert_names(dmlbench("validate", "--config", binary, cwd=tmp_path), str(binary), "is not a text file")
    config = tmp_path / "folder.yaml"
    config.write_text(
        f"datasets:\n  mine: {{source: folder, root: {tmp_path / 'gone'}}}\n"
        "conditions:\n  - {dataset: mine, n_anomaly: [1]}\ncases: 2\nscoring: {k: [1]}\n"
    )
    assert_names(dmlbench("validate", "--config", config, cwd=tmp_path), "datasets.mine.root", "does not exist")


def test_unknown_method_through_the_workflow(tmp_path):
    config = config_file(tmp_path, _set("methods.triplet", {}))
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(work, "--configfile", str(config), "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert_names(out, "methods.triplet", "is not a head")
    assert not (work / "results").exists() and not (work / "logs").exists()


# --------------------------------------------------------------------------------------------
# stage arguments


def test_method_not_in_the_config(tmp_path, test_run):
    message = dmlbench(
        "train",
        "--config",
        ROOT / "config/test.yaml",
        "--dataset",
        "digits",
        "--n-anomaly",
        "3",
        "--method",
        "triplet",
        "--data",
        test_run / "results/data/digits.npz",
        cwd=tmp_path,
    )
    assert_names(message, "method 'triplet'", "configured: conventional")


def test_dataset_not_in_the_config(tmp_path):
    message = dmlbench("prepare", "--config", ROOT / "config/test.yaml", "--dataset", "svhn", cwd=tmp_path)
    assert_names(message, "dataset 'svhn'", "defined: digits")
    assert not (tmp_path / "results").exists()


def test_report_scorer_that_was_not_computed(tmp_path, test_run):
    message = dmlbench(
        "figures",
        "--tables",
        test_run / "results/tables",
        "--out",
        tmp_path / "fig",
        "--scorer",
        "cosine_k7",
        cwd=tmp_path,
    )
    assert_names(message, "cosine_k7", "cosine_k1", "Choose one")
    assert not (tmp_path / "fig").exists() or not any((tmp_path / "fig").iterdir())


def test_k_larger_than_the_reference_set_at_scoring(tmp_path, test_run):
    """n_per_class all: the reference size is known only from the run; scoring refuses."""
    # (annex A.2 off: its reference size is known from the config, which would refuse k first)
    config = config_file(tmp_path, lambda c: (c["scoring"].update(k=[1, 5000]), c.pop("annex")))
    run = test_run / "results/runs" / JOB
    n_ref = np.load(run / "embeddings.npz")["case0_reference"].shape[0]
    out = tmp_path / "s0.parquet"
    message = dmlbench("score", "--config", config, "--run", run, "--out", out, cwd=tmp_path, subprocess_=True)
    assert_names(message, str(run), "k=5000", f"reference set ({n_ref} rows)", f"use k <= {n_ref}")
    assert not out.exists()


def test_score_a_run_that_did_not_finish(tmp_path):
    run = tmp_path / "runs" / JOB
    run.mkdir(parents=True)
    message = dmlbench(
        "score", "--config", ROOT / "config/test.yaml", "--run", run, "--out", tmp_path / "s.parquet", cwd=tmp_path
    )
    assert_names(message, str(run), "did not finish", "rerun `dmlbench train`")


def test_n_per_class_larger_than_a_class(tmp_path, test_run):
    config = config_file(tmp_path, lambda c: c.update(n_per_class=[1000]))
    out = tmp_path / "run"
    message = dmlbench(
        "train",
        "--config",
        config,
        *TRAIN_KEYS,
        "--n-per-class",
        "1000",
        "--data",
        test_run / "results/data/digits.npz",
        "--out",
        out,
        cwd=tmp_path,
    )
    assert_names(message, "n_per_class 1000", "larger than class '", "training images", "use n_per_class <=")
    assert not out.exists()


def test_loss_becomes_nan(tmp_path, test_run):
    config = config_file(tmp_path, _set("training.lr", 1e12))
    out = tmp_path / "run"
    message = dmlbench(
        "train",
        "--config",
        config,
        *TRAIN_KEYS,
        "--data",
        test_run / "results/data/digits.npz",
        "--out",
        out,
        cwd=tmp_path,
    )
    assert_names(
        message, "method 'conventional'", "case 0", "epoch 0", "lower training.lr", "No embeddings were written"
    )
    assert not (out / "embeddings.npz").exists() and not (out / "run.json").exists()


# --------------------------------------------------------------------------------------------
# dataset files


def test_truncated_prepared_npz(tmp_path, test_run):
    data = (test_run / "results/data/digits.npz").read_bytes()
    cut = tmp_path / "digits.npz"
    cut.write_bytes(data[: len(data) // 2])
    message = dmlbench(
        "train",
        "--config",
        ROOT / "config/test.yaml",
        *TRAIN_KEYS,
        "--data",
        cut,
        "--out",
        tmp_path / "run",
        cwd=tmp_path,
        subprocess_=True,
    )
    assert_names(message, str(cut), "truncated or corrupt", "rerun `dmlbench prepare`")


def _write_idx(path: Path, arr: np.ndarray) -> None:
    magic = 0x803 if arr.ndim == 3 else 0x801
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_truncated_idx_file(tmp_path, gz):
    root = tmp_path / "mnist"
    root.mkdir()
    rng = np.random.default_rng(0)
    names = {
        "train-images-idx3-ubyte": rng.integers(0, 255, (20, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(20) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 255, (10, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(10) % 10,
    }
    for name, arr in names.items():
        _write_idx(root / name, arr)
    victim = root / "train-images-idx3-ubyte"
    data = victim.read_bytes()[: victim.stat().st_size // 2]
    if gz:
        victim.unlink()
        victim = root / "train-images-idx3-ubyte.gz"
        victim.write_bytes(gzip.compress(data))
    else:
        victim.write_bytes(data)
    config = config_file(
        tmp_path,
        None,
        {"datasets": {"m": {"source": "mnist", "root": str(root)}}, "conditions": [{"dataset": "m", "n_anomaly": [1]}]},
    )
    message = dmlbench("prepare", "--config", config, "--dataset", "m", "--out", tmp_path / "m.npz", cwd=tmp_path)
    assert_names(message, str(victim), "truncated", "fetch it again")
    assert not (tmp_path / "m.npz").exists()


def _folder_dataset(root: Path, classes=("cat", "dog"), per_class=3) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def _folder_config(tmp_path: Path, root: Path, **top) -> Path:
    return config_file(
        tmp_path,
        None,
        {
            "datasets": {"pets": {"source": "folder", "root": str(root)}},
            "conditions": [{"dataset": "pets", "n_anomaly": [1]}],
            **top,
        },
    )


def test_empty_class_folder(tmp_path):
    root = _folder_dataset(tmp_path / "pets")
    for p in (root / "test" / "dog").iterdir():
        p.unlink()
    message = dmlbench(
        "prepare",
        "--config",
        _folder_config(tmp_path, root),
        "--dataset",
        "pets",
        "--out",
        tmp_path / "pets.npz",
        cwd=tmp_path,
    )
    assert_names(message, str(root / "test" / "dog"), "holds no images", "add images or remove the folder")


def test_unreadable_image(tmp_path):
    root = _folder_dataset(tmp_path / "pets")
    bad = root / "train" / "dog" / "1.png"
    bad.write_bytes(bad.read_bytes()[:20])  # a cut-off PNG
    message = dmlbench(
        "prepare",
        "--config",
        _folder_config(tmp_path, root),
        "--dataset",
        "pets",
        "--out",
        tmp_path / "pets.npz",
        cwd=tmp_path,
        subprocess_=True,
    )
    assert_names(message, f"cannot read image {bad}", "replace or delete the file")
    assert not (tmp_path / "pets.npz").exists()


@pytest.fixture(scope="module")
def two_class_folder(tmp_path_factory) -> tuple[Path, Path]:
    """A prepared two-class folder dataset: its class count is unknown to the config check."""
    tmp = tmp_path_factory.mktemp("pets")
    root = _folder_dataset(tmp / "pets")
    npz = tmp / "pets.npz"
    from dmlbench.data.sources import load_source, save_npz

    save_npz(load_source({"source": "folder", "root": str(root)}), npz)
    return tmp, npz


@pytest.mark.parametrize(
    "n_anomaly, cases, parts",
    [
        (2, 1, ["n_anomaly 2 is impossible with 2 classes", "use 1..1"]),
        (1, 5, ["cases 5 exceeds the 2 classes of dataset 'pets'"]),
    ],
    ids=["n_anomaly >= classes of a folder dataset", "cases > classes of a folder dataset"],
)
def test_condition_impossible_for_a_folder_dataset(tmp_path, two_class_folder, n_anomaly, cases, parts):
    folder, npz = two_class_folder
    config = config_file(
        tmp_path,
        None,
        {
            "datasets": {"pets": {"source": "folder", "root": str(folder / "pets")}},
            "conditions": [{"dataset": "pets", "n_anomaly": [n_anomaly]}],
            "cases": cases,
            "model": {"backbone": "small_cnn"},
        },
    )
    out = tmp_path / "run"
    message = dmlbench(
        "train",
        "--config",
        config,
        "--dataset",
        "pets",
        "--n-anomaly",
        n_anomaly,
        "--method",
        "conventional",
        "--device",
        "cpu",
        "--data",
        npz,
        "--out",
        out,
        cwd=tmp_path,
    )
    assert_names(message, *parts)
    assert not out.exists()


#: Bad inputs tried in this file (parametrized cases count one each).
BAD_INPUTS = len(CONFIG_CASES) + 2 + 1 + 7 + 1 + 2 + 2 + 2
