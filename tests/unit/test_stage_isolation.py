"""The package's layers, read from the imports of every module of src/dmlbench (an ast walk):

- a stage package (data, train, tune, score, aggregate, report) imports config/, layout, data/,
  heads/ and the ground floor - never another stage: stages talk through files (dmlbench.layout),
  with the exceptions of ALLOWED, each with its reason;
- config/ imports only itself and the ground floor (the workflow's parse imports it: torch-free,
  tests/unit/test_config_torch_free.py);
- the ground floor imports only the ground floor; heads/ (the study's subject) the ground floor
  and config/ (each head's parameters are declared there);
- imports sit at the top of a module; only cli.py defers its stages' imports to the subcommand
  that runs, and the few modules in LOCAL_IMPORTS defer a named package, each for the reason given.

Count the function-local imports with ``python -m tests.unit.test_stage_isolation [SRC]`` (each
module's count and the total; SRC defaults to src/dmlbench, e.g. another checkout's to compare).
"""

import ast
from collections import Counter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "dmlbench"

STAGES = ("data", "train", "tune", "score", "aggregate", "report")
#: Modules every stage may import: shared maths (with calibration, the simulation that checks the
#: statistics), the files' contracts, the clock, the errors.
GROUND_FLOOR = ("errors", "io", "phases", "provenance", "embeddings_file", "stats", "calibration", "metrics", "layout")

#: What each part may import (besides itself and the package root: __version__, METHOD_ORDER).
MAY_IMPORT = {
    "ground": {"ground"},
    "config": {"ground"},
    "heads": {"ground", "config"},
    "data": {"ground", "config"},
    **{stage: {"ground", "config", "data", "heads"} for stage in STAGES if stage != "data"},
}

#: Imports across the layers above that are allowed all the same: (importer, imported) -> why.
#: Every other stage reads another's output from its files.
_TUNE_TRAINS = (
    "the tune stage's objective trains models: it uses the train stage's trainer itself (RunTrainer, "
    "JobData, the device set-up), so a fold trains exactly as a run does and the parameters found are "
    "those of the runs they are used for; a copy would drift, and moving the trainer out of its stage "
    "would make every stage's ground floor import torch and fastai. The train stage never imports tune."
)
ALLOWED: dict[tuple[str, str], str] = {
    ("dmlbench.tune.objective", "dmlbench.train.batches"): _TUNE_TRAINS,
    ("dmlbench.tune.objective", "dmlbench.train.run"): _TUNE_TRAINS,
    ("dmlbench.tune.job", "dmlbench.train.batches"): _TUNE_TRAINS,
    ("dmlbench.tune.job", "dmlbench.train.device"): _TUNE_TRAINS,
}

#: Function-local imports outside cli.py: module -> (the packages it may import inside a function, why).
LOCAL_IMPORTS = {
    "dmlbench.data.sources": (
        {"torch", "torchvision", "sklearn", "PIL"},
        "a source's reader imports its own package when it reads (digits: scikit-learn and torch, "
        "folder: Pillow, a download: torchvision); the module's npz reader serves the report, which the "
        "workflow's parse imports",
    ),
    "dmlbench.config.pml_params": (
        {"pytorch_metric_learning"},
        "only regenerating the stored table of PML's constructors imports PML (and torch); the config check never does",
    ),
    "dmlbench.config.references": (
        {"pyarrow"},
        "only a `references:` entry that is a parquet file (an earlier run's summary table) needs pyarrow; "
        "the config check of every other config reads no parquet",
    ),
    "dmlbench.heads.pml": (
        {"pytorch_metric_learning"},
        "only a pml head needs pytorch-metric-learning; the study's six heads train without importing it",
    ),
    "dmlbench.report.worst_misses": (
        {"PIL"},
        "the report's section declarations are imported in the workflow's parse; Pillow only draws the images",
    ),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def dmlbench_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(imported dmlbench module, line) of every import of the tree, anywhere in it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "dmlbench"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dmlbench":
            assert node.level == 0, "relative import"
            for a in node.names:  # `from dmlbench.config import methods` imports the module config.methods
                sub = f"{node.module}.{a.name}"
                found.append((sub if is_module(sub) else node.module, node.lineno))
    return found


def local_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(top-level package, line) of every import inside a function."""
    found = []

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, ast.Import):
                found.extend((a.name.split(".")[0], child.lineno) for a in child.names)
            elif in_function and isinstance(child, ast.ImportFrom):
                found.append(((child.module or "").split(".")[0], child.lineno))
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(tree, False)
    return found


def part(module: str) -> str | None:
    """The layer of a dmlbench module: a stage, config, heads, ground; None for the root and cli."""
    top = module.split(".")[1] if "." in module else None
    if top in STAGES or top in ("config", "heads"):
        return top
    if top in GROUND_FLOOR:
        return "ground"
    return None


MODULES = {module_name(p): ast.parse(p.read_text()) for p in sorted(SRC.rglob("*.py"))}


def test_every_module_has_a_layer():
    """A new top-level module must be placed: in a stage package, config/, or the ground floor."""
    unplaced = [m for m in MODULES if part(m) is None and m not in ("dmlbench", "dmlbench.cli", "dmlbench.__main__")]
    assert not unplaced, f"modules outside the layers (add them to a package, or to GROUND_FLOOR): {unplaced}"


@pytest.mark.parametrize("module", [m for m in MODULES if part(m) is not None])
def test_a_module_imports_only_what_its_layer_may(module):
    mine = part(module)
    wrong = []
    for imported, line in dmlbench_imports(MODULES[module]):
        theirs = part(imported)
        if theirs is None or theirs == mine or theirs in MAY_IMPORT[mine]:
            continue  # the root package, the module's own layer, or one below it
        if (module, imported) in ALLOWED:
            continue
        wrong.append(f"{module}:{line} imports {imported} ({mine} may import {sorted(MAY_IMPORT[mine])})")
    assert not wrong, "\n".join(wrong)


def test_no_stage_imports_another():
    """The rule said once more, for the stages alone: their imports of each other, listed."""
    crossing = sorted(
        (module, imported)
        for module in MODULES
        for imported, _ in dmlbench_imports(MODULES[module])
        if part(module) in STAGES and part(imported) in STAGES and part(imported) not in (part(module), "data")
    )
    assert [c for c in crossing if c not in ALLOWED] == []


@pytest.mark.parametrize("module", [m for m in MODULES if m != "dmlbench.cli"])
def test_imports_are_at_the_top(module):
    """Only cli.py defers imports; the modules of LOCAL_IMPORTS defer the packages named there."""
    allowed = LOCAL_IMPORTS.get(module, (set(), ""))[0]
    deferred = [
        f"{module}:{line} imports {package} inside a function" for package, line in local_imports(MODULES[module])
    ]
    deferred = [d for d, (package, _) in zip(deferred, local_imports(MODULES[module])) if package not in allowed]
    assert not deferred, "\n".join(deferred) + "\n(import at the top, or add the module to LOCAL_IMPORTS with why)"


def test_unit_tests_mirror_the_packages():
    """tests/unit/<package>/ holds the tests of src/dmlbench/<package>/ (the ground floor's are in tests/unit/)."""
    packages = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())
    missing = [p for p in packages if not list((SRC.parents[1] / "tests" / "unit" / p).glob("test_*.py"))]
    assert not missing, f"no tests/unit/<package>/test_*.py for {missing}"


def test_test_modules_have_one_name_each():
    """The test folders are no packages (pytest's rootdir-relative import): two test modules of one
    file name stop the whole suite at collection ("import file mismatch"), which a targeted run of
    either never shows."""
    tests = SRC.parents[1] / "tests"
    names: dict[str, list[str]] = {}
    for path in sorted(tests.rglob("test_*.py")):
        names.setdefault(path.name, []).append(str(path.relative_to(tests)))
    twice = {name: paths for name, paths in names.items() if len(paths) > 1}
    assert not twice, f"rename one of each: {twice}"


def test_the_exceptions_are_current():
    """Every listed exception still happens: a stale entry would hide a new one."""
    for module, (packages, _) in LOCAL_IMPORTS.items():
        assert module in MODULES, module
        assert packages <= {p for p, _ in local_imports(MODULES[module])}, module
    for module, imported in ALLOWED:
        assert imported in {i for i, _ in dmlbench_imports(MODULES[module])}, (module, imported)


if __name__ == "__main__":
    import sys

    src = Path(sys.argv[1]) if len(sys.argv) > 1 else SRC
    counts = Counter(
        {str(p.relative_to(src)): len(local_imports(ast.parse(p.read_text()))) for p in sorted(src.rglob("*.py"))}
    )
    for module, n in counts.most_common():
        if n:
            print(f"{n:4d}  {module}")
    print(f"{sum(counts.values()):4d}  function-local imports in {src}")
