"""Render the Quarto report (HTML and Typst PDF) against a results folder.

Quarto runs the report's Python cells in a Jupyter kernel and passes ``-P`` parameters through
papermill; both come with dmlbench's environment. The kernel's Python is the interpreter that
runs this module (``QUARTO_PYTHON``), so a fresh shell that never activated the venv renders with
the venv's packages. Quarto's own output goes to a log file; a failure is one message that names
the format, Quarto's last error line and the log, never a Python traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dmlbench import layout
from dmlbench.errors import DmlbenchError
from dmlbench.io import atomic_path

FORMATS = {"html": "report.html", "typst": "report.pdf"}
# What Quarto writes next to the .qmd; never copied into another render folder.
_BUILD_DEBRIS = ("_output", ".quarto", "*_files", "*.html", "*.pdf", "*.ipynb", "*.typ")
NO_QUARTO = 3  # exit status of `dmlbench render` without Quarto: the pipeline treats it as "skipped"


def _report_folder(qmd: Path) -> Path:
    """The folder to render in: ``./report``, holding a copy of the report's sources when the
    .qmd lives elsewhere (Snakemake run with ``--directory``), so ``_output`` lands in the run."""
    local = Path("report").resolve()
    if qmd.parent != local:
        shutil.copytree(qmd.parent, local, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_BUILD_DEBRIS))
    return local


def _last_error(output: str) -> str:
    """Quarto's most telling line: the last one that says ERROR or ...Error:, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("ERROR") or "Error:" in line or "Error " in line:
            return line
    return lines[-1] if lines else "no output"


def render_report(
    qmd: str | os.PathLike,
    results: str | os.PathLike,
    scorer: str = "cosine_k1",
    log: str | os.PathLike = "logs/render.log",
    out_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """Render ``qmd`` to ``report/_output/report.html`` and ``report.pdf``; return their paths.

    ``results`` is the folder of ``config.yaml``, ``tables/``, ``figures/`` and ``data/``;
    ``scorer`` the score column the report shows; ``out_dir`` a folder to copy the two files to
    (e.g. a storage plugin's local copy of report/_output, with no shared filesystem). Raises
    DmlbenchError (one message) when Quarto fails, and exits with status 3 when the quarto
    binary is not on PATH.
    """
    quarto = shutil.which("quarto")
    results = Path(results).resolve()
    if quarto is None:
        print(
            "quarto is not on PATH: the figures and tables are under "
            f"{layout.figures_dir(results)} and {layout.tables_dir(results)}. To render the report, install Quarto "
            "(https://quarto.org/docs/get-started/) and run: dmlbench render",
            file=sys.stderr,
        )
        raise SystemExit(NO_QUARTO)
    qmd = Path(qmd).resolve()
    if not qmd.is_file():
        raise DmlbenchError(f"report source {qmd} not found; pass --qmd <path to report.qmd>")
    if not Path(layout.snapshot_file(results)).is_file():
        raise DmlbenchError(
            f"{results} holds no config.yaml: run the pipeline (snakemake) first, "
            "or pass --results <the results folder>"
        )
    folder = _report_folder(qmd)
    log = Path(log).resolve()
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ}
    env.setdefault("QUARTO_PYTHON", sys.executable)
    outputs = []
    with open(log, "w") as fh:  # a log file: streamed as Quarto runs, never read back as a result
        for fmt, name in FORMATS.items():
            cmd = [quarto, "render", qmd.name, "--to", fmt, "-P", f"results:{results}", "-P", f"scorer:{scorer}"]
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            proc = subprocess.run(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            fh.write(proc.stdout)
            fh.flush()
            written = folder / "_output" / name
            if proc.returncode != 0 or not written.is_file():
                why = _last_error(proc.stdout) if proc.returncode else f"it exited 0 but wrote no {written}"
                raise DmlbenchError(
                    f"quarto could not render {qmd.name} to {fmt} (exit {proc.returncode}): {why}; "
                    f"Quarto's full output is in {log}"
                )
            outputs.append(written)
    if out_dir is not None and Path(out_dir).resolve() != folder / "_output":
        copies = []
        for path in outputs:
            with atomic_path(Path(out_dir).resolve() / path.name) as tmp:
                shutil.copyfile(path, tmp)
            copies.append(Path(out_dir).resolve() / path.name)
        outputs = copies
    return outputs
