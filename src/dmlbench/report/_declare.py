"""How a section declares its figures and tables: label, caption, builder, and when a config
makes it - in one place, the section's module.

A builder takes the :class:`~dmlbench.report.study.View` (the tables, the config, the report's
scorer) and returns an Altair chart (figures) or a DataFrame (tables; written as CSV with its
own column names, printed with the headers and number formats of ``columns``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def always(config: dict) -> str | None:
    """Made by every config."""
    return None


@dataclass(frozen=True)
class Column:
    """A printed column: the table's column ``name``, its ``header`` in words (with units), its
    number format (``fmt``: a format spec such as ".3f", "p" for p-values, "yes/no" for flags,
    None for text) and its relative width in the PDF."""

    name: str
    header: str
    fmt: str | None = None
    width: float = 1.0

    @property
    def numeric(self) -> bool:
        return self.fmt is not None and self.fmt != "yes/no"


@dataclass(frozen=True)
class Figure:
    """A figure of the report: exported as ``results/figures/<label>.{svg,png,vl.json}``."""

    label: str
    caption: str
    build: Callable[[Any], Any]
    needs: Callable[[dict], str | None] = always  # why a config does not make it (None: it does)


@dataclass(frozen=True)
class Table:
    """A table of the report: exported as ``results/tables/<label>.csv``; printed in the report
    with ``columns`` unless ``printed`` is False (the CSV holds a figure's numbers). ``notes``
    names a text column printed as numbered notes under the table instead of in a cell;
    ``small`` sets a wide table in a smaller font in the PDF; ``shown`` turns the exported table
    into the printed one (a long table summarised or turned on its side)."""

    label: str
    caption: str
    build: Callable[[Any], Any]
    needs: Callable[[dict], str | None] = always
    columns: tuple[Column, ...] = field(default_factory=tuple)
    printed: bool = True
    notes: str | None = None
    small: bool = False
    shown: Callable[[Any], Any] | None = None  # the printed frame, from the built one (default: itself)
