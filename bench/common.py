"""What the benchmarks share: the repository's paths, the result writer, and how a benchmark starts
Snakemake on the repository's workflow (the venv's snakemake, this checkout's src/ first)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dmlbench.io import write_json

#: The repository's root, the benchmarks' results folder, the venv's bin/ (this interpreter's).
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent


def write_result(out: str | os.PathLike, result: dict, note: str = "") -> Path:
    """Write a benchmark's ``result`` as JSON to ``out`` (atomically) and say so."""
    write_json(out, result)
    print(f"wrote {out}{note}")
    return Path(out)


def snakemake_cmd(
    workdir: str | os.PathLike, configfile: str | os.PathLike, *args: str, targets: tuple[str, ...] = ()
) -> list[str]:
    """The repository's workflow run in ``workdir`` on ``configfile`` by the venv's snakemake, for
    ``targets`` (default: its `all` rule); ``args``: more options."""
    exe = BIN / "snakemake"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    return base + [
        *targets,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def snakemake_env(**extra: str) -> dict[str, str]:
    """This environment with the venv's bin/ first on PATH and this checkout's src/ first on
    PYTHONPATH (the jobs then run this checkout's dmlbench), plus ``extra``."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    pythonpath = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PATH": path, "PYTHONPATH": pythonpath, **extra}
