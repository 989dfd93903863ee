"""The torch the package may use: the lent GPU machines run torch 2.11 on Python 3.12 (see
docs/extend.md, "The torch on the GPU machines"), while this venv pins a newer one, so a call that
only the newer torch has would pass every test here and fail on the device. The package's
``torch.*`` names (attributes reached from ``import torch`` / ``from torch import ...`` and the
torch modules it looks up in ``sys.modules``) are kept to a list of names checked against torch
2.11, ``tests/unit/torch_2_11_api.txt``; a new one must be checked there before it is added."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import dmlbench

SRC = Path(dmlbench.__file__).parent
ALLOWED = Path(__file__).with_name("torch_2_11_api.txt")


def torch_names(root: Path) -> dict[str, set[str]]:
    """Every dotted torch name the Python files under ``root`` use, with the files using it."""
    used: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        where = str(path.relative_to(root))
        alias: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "torch" or a.name.startswith("torch."):
                        alias[a.asname or "torch"] = a.name if a.asname else "torch"
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "torch":
                for a in node.names:
                    alias[a.asname or a.name] = f"{node.module}.{a.name}"
                    used.setdefault(f"{node.module}.{a.name}", set()).add(where)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("torch."):
                if node.value.replace(".", "").replace("_", "").isalnum():  # a module name, not prose
                    used.setdefault(node.value, set()).add(where)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                chain, inner = [], node
                while isinstance(inner, ast.Attribute):
                    chain.append(inner.attr)
                    inner = inner.value
                if isinstance(inner, ast.Name) and inner.id in alias:
                    used.setdefault(".".join([alias[inner.id], *reversed(chain)]), set()).add(where)
    return used


def allowed() -> set[str]:
    lines = (line.split("#")[0].strip() for line in ALLOWED.read_text().splitlines())
    return {line for line in lines if line}


def test_the_package_uses_only_torch_names_that_torch_2_11_has():
    used = torch_names(SRC)
    new = {name: sorted(files) for name, files in used.items() if name not in allowed()}
    assert not new, (
        "torch names not on the torch 2.11 list (the GPU machines' torch): check each against torch 2.11's "
        f"source or docs, then add it to {ALLOWED.name}: {new}"
    )


def test_the_walk_finds_attributes_imports_and_module_lookups(tmp_path):
    (tmp_path / "m.py").write_text(
        "import sys\nimport torch\nfrom torch import nn\nfrom torch.nn import functional as F\n"
        "x = torch.cuda.Event(enable_timing=True)\ny = nn.functional.pad\nz = F.interpolate\n"
        "c = sys.modules.get('torch._inductor.config')\ns = 'torch.compile failed (%s)'\n"
    )
    assert set(torch_names(tmp_path)) == {
        "torch.cuda",
        "torch.cuda.Event",
        "torch.nn",
        "torch.nn.functional",
        "torch.nn.functional.pad",
        "torch.nn.functional.interpolate",
        "torch._inductor.config",
    }


def test_every_listed_name_exists_in_the_installed_torch():
    """No typo on the list: each name resolves here (a module, or an attribute of one)."""
    missing = []
    for name in sorted(allowed()):
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert not missing, missing
