"""Run a Quarto document's Python cells without Quarto, as its Jupyter engine would.

``code_cells(path)`` lists the ```{python} cells; ``run_cells(path, params, cwd)`` executes
them in order in one namespace, with the parameter overrides injected right after the
cell tagged ``parameters`` (what ``quarto render -P key:value`` and papermill do), the
working directory set to ``cwd`` (Quarto runs cells in the document's folder), and the last
bare expression of each cell displayed, as in a notebook. Everything displayed is recorded
in ``namespace["__displayed__"]``; inline `` `{python} expr` `` values in
``namespace["__inline__"]`` (expression -> value); what the cells print (the report's cells run
with ``output: asis``, so that is Markdown for the page) in ``namespace["__stdout__"]``, cell by
cell in ``namespace["__cell_stdout__"]``. ``rendered_markdown(path, namespace)`` puts the two
together: the page's Markdown as Quarto hands it to Pandoc (prose with inline values, each cell
replaced by what it printed).
``{{< include path >}}`` shortcodes are expanded first, as Quarto does. When IPython is not
installed a small stand-in ``IPython.display`` (display, Markdown, HTML, Image) is provided.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

_ABSENT = object()
_FENCE = re.compile(r"^(?P<ticks>`{3,})\s*(?P<info>.*)$")
_PYTHON_CELL = re.compile(r"^\{python\b.*\}$")
_INLINE = re.compile(r"`\{python\}\s+([^`]+)`")
_INCLUDE = re.compile(r"^\{\{<\s*include\s+(\S+)\s*>\}\}\s*$", re.M)


def expanded(qmd_path: str | os.PathLike) -> str:
    """The document's text with every ``{{< include file >}}`` replaced by the file (recursively,
    paths relative to the including file), as Quarto reads it before running any cell."""
    path = Path(qmd_path)

    def include(match: re.Match) -> str:
        return expanded(path.parent / match[1]).rstrip("\n")

    return _INCLUDE.sub(include, path.read_text())


def includes(qmd_path: str | os.PathLike) -> list[str]:
    """The files the document includes, in order, as written in its shortcodes."""
    return _INCLUDE.findall(Path(qmd_path).read_text())


def _blocks(lines: list[str]) -> Iterator[tuple[str | None, list[str]]]:
    """The document's lines in order: ``(None, [line])`` for a prose line, ``(info, block)`` for a
    fenced block (its info string, its lines with both fences)."""
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            yield None, [lines[i]]
            i += 1
            continue
        closing = re.compile(rf"^`{{{len(match['ticks'])},}}\s*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            j += 1
        yield match["info"].strip(), lines[i : j + 1]
        i = j + 1


def _split(qmd_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(python cell sources, prose lines): fenced blocks other than cells are dropped."""
    cells: list[str] = []
    prose: list[str] = []
    for info, block in _blocks(expanded(qmd_path).splitlines()):
        if info is None:
            prose.extend(block)
        elif _PYTHON_CELL.match(info):
            cells.append("\n".join(block[1:-1] if len(block) > 1 and _FENCE.match(block[-1]) else block[1:]) + "\n")
    return cells, prose


def code_cells(qmd_path: str | os.PathLike) -> list[str]:
    """Source of every executable ```{python} cell, in document order (fences removed).

    Other fenced blocks (```python without braces, ````markdown examples) are skipped,
    including any cell-looking text inside them.
    """
    return _split(qmd_path)[0]


def inline_expressions(qmd_path: str | os.PathLike) -> list[str]:
    """The expressions of inline code (`` `{python} expr` ``) in the prose, in order."""
    prose = "\n".join(_split(qmd_path)[1])
    return [m.strip() for m in _INLINE.findall(prose)]


def cell_options(cell: str) -> dict[str, Any]:
    """The ``#| key: value`` options at the top of a cell, parsed as YAML."""
    option_lines = []
    for line in cell.splitlines():
        if line.startswith("#|"):
            option_lines.append(line[2:].removeprefix(" "))
        elif line.strip():
            break
    if not option_lines:
        return {}
    return yaml.safe_load("\n".join(option_lines)) or {}


def _is_parameters_cell(cell: str) -> bool:
    tags = cell_options(cell).get("tags") or []
    return "parameters" in tags


# --------------------------------------------------------------------------- IPython stand-in


class _DisplayObject:
    def __init__(self, data: Any = None, filename: str | os.PathLike | None = None, **kwargs: Any) -> None:
        self.filename = None if filename is None else str(filename)
        self.metadata = kwargs
        if data is None and filename is not None:
            # IPython reads the file when the object is made; so does this stand-in.
            mode = "rb" if isinstance(self, Image) else "r"
            with open(filename, mode) as fh:
                data = fh.read()
        self.data = data

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object>"


class Markdown(_DisplayObject):
    def _repr_markdown_(self) -> str:
        return self.data


class HTML(_DisplayObject):
    def _repr_html_(self) -> str:
        return self.data


class Image(_DisplayObject):
    def _repr_png_(self) -> bytes:
        return self.data


def _stub_ipython(display) -> dict[str, types.ModuleType]:
    ipython = types.ModuleType("IPython")
    ipython.__doc__ = "Stand-in for tests: IPython is not installed."
    ipython_display = types.ModuleType("IPython.display")
    for name, obj in {"display": display, "Markdown": Markdown, "HTML": HTML, "Image": Image}.items():
        setattr(ipython_display, name, obj)
    ipython.display = ipython_display
    ipython.get_ipython = lambda: None
    return {"IPython": ipython, "IPython.display": ipython_display}


@contextlib.contextmanager
def _display_recorder(displayed: list) -> Iterator:
    def display(*objs: Any, **kwargs: Any) -> None:
        displayed.extend(objs)

    try:
        import IPython.display as real_display
    except ImportError:
        real_display = None
    if real_display is not None:
        original = real_display.display
        real_display.display = display
        try:
            yield display
        finally:
            real_display.display = original
        return
    saved = {name: sys.modules.get(name, _ABSENT) for name in ("IPython", "IPython.display")}
    sys.modules.update(_stub_ipython(display))
    try:
        yield display
    finally:
        for name, module in saved.items():
            if module is _ABSENT:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@contextlib.contextmanager
def _chdir(path: str | os.PathLike) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


# --------------------------------------------------------------------------- execution


def _run_cell(source: str, namespace: dict, display, name: str) -> None:
    tree = ast.parse(source, filename=name)
    last = None
    # A notebook displays the value of a trailing expression unless the line ends in ";".
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";"):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, name, "exec"), namespace)
    if last is not None:
        value = eval(compile(last, name, "eval"), namespace)
        if value is not None:
            display(value)


def run_cells(
    qmd_path: str | os.PathLike, params: dict[str, Any] | None = None, cwd: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Execute every Python cell of ``qmd_path`` in order in one namespace; return the namespace.

    ``params`` override the parameters cell (``#| tags: [parameters]``): they are assigned
    in a cell run right after it, as Quarto/papermill inject them. ``cwd`` defaults to the
    document's folder. A failing cell re-raises its exception with the cell number noted.
    """
    qmd_path = Path(qmd_path).resolve()
    params = dict(params or {})
    cells = code_cells(qmd_path)
    if params and not any(_is_parameters_cell(c) for c in cells):
        raise ValueError(f"{qmd_path} has no cell tagged parameters to override with {sorted(params)}")
    namespace: dict[str, Any] = {"__name__": "__main__", "__displayed__": [], "__cell_stdout__": []}
    injected_done = not params
    printed = io.StringIO()
    with (
        _display_recorder(namespace["__displayed__"]) as display,
        _chdir(cwd or qmd_path.parent),
        contextlib.redirect_stdout(printed),
    ):
        for index, source in enumerate(cells, start=1):
            name = f"<{qmd_path.name} cell {index}>"
            start = printed.tell()
            try:
                _run_cell(source, namespace, display, name)
                namespace["__cell_stdout__"].append(printed.getvalue()[start:])
                if not injected_done and _is_parameters_cell(source):
                    injected_done = True
                    injected = "".join(f"{key} = {value!r}\n" for key, value in params.items())
                    _run_cell(injected, namespace, display, f"<{qmd_path.name} injected parameters>")
            except Exception as exc:
                if hasattr(exc, "add_note"):
                    exc.add_note(f"in {name}:\n{source}")
                raise
        # Inline expressions run in the same kernel; evaluating them after the cells is
        # enough for values the cells define.
        namespace["__inline__"] = {
            expr: eval(compile(expr, f"<{qmd_path.name} inline>", "eval"), namespace)
            for expr in inline_expressions(qmd_path)
        }
    namespace["__stdout__"] = printed.getvalue()
    return namespace


def inline_text(value: Any) -> str:
    """An inline value as the page shows it: Markdown objects by their text, the rest by str()."""
    return str(getattr(value, "data", value))


def rendered_markdown(qmd_path: str | os.PathLike, namespace: dict[str, Any]) -> str:
    """The executed document's Markdown: prose with every inline expression replaced by its value,
    each Python cell by what it printed (``namespace`` from ``run_cells`` of the same file); other
    fenced blocks are kept."""
    outputs = iter(namespace["__cell_stdout__"])
    inline = namespace["__inline__"]
    out: list[str] = []
    for info, block in _blocks(expanded(qmd_path).splitlines()):
        if info is None:
            out.append(_INLINE.sub(lambda m: inline_text(inline[m[1].strip()]), block[0]))
        else:
            out.append(next(outputs) if _PYTHON_CELL.match(info) else "\n".join(block))
    return "\n".join(out) + "\n"


def run_in_kernel(
    qmd_path: str | os.PathLike,
    params: dict[str, Any] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: int = 120,
) -> list[list[dict]]:
    """Execute the cells as a notebook in a real Jupyter kernel (nbclient + ipykernel).

    Closer to Quarto than ``run_cells``: outputs are the kernel's MIME bundles, which
    decide what Quarto puts in each format (text/html for HTML, image/png for Typst,
    text/markdown as markdown). Returns the outputs of each document cell (the injected
    parameters cell is not listed). The kernel inherits this process's environment, so
    PYTHONPATH must let it import dmlbench. Raises nbclient's CellExecutionError on error.
    """
    import nbclient
    import nbformat

    qmd_path = Path(qmd_path).resolve()
    params = dict(params or {})
    nb = nbformat.v4.new_notebook()
    positions = []
    for source in code_cells(qmd_path):
        positions.append(len(nb.cells))
        nb.cells.append(nbformat.v4.new_code_cell(source))
        if params and _is_parameters_cell(source):
            injected = "".join(f"{key} = {value!r}\n" for key, value in params.items())
            nb.cells.append(nbformat.v4.new_code_cell(injected))
            params = {}
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": str(cwd or qmd_path.parent)}},
    )
    client.execute()
    return [nb.cells[i].outputs for i in positions]
