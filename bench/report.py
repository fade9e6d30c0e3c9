"""Rows of results: the table printed at the end and the JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

Better = Literal["higher", "lower"]


@dataclass
class Figure:
    """One measured number, or None with a note saying why there is none."""

    value: float | None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def missing(cls, note: str) -> Figure:
        return cls(None, note)


@dataclass
class Row:
    key: str
    title: str
    unit: str
    better: Better
    gw: Figure
    baseline: Figure
    baseline_label: str = "reference"

    @property
    def ratio(self) -> float | None:
        if self.gw.value is None or not self.baseline.value:
            return None
        return self.gw.value / self.baseline.value

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("jobs/s", "KiB"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.2f} ms"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    return f"{value:,.3f} {unit}"


class _Notes:
    """Footnotes under the table, so long reasons do not squeeze the columns."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        if not text:
            return ""
        if text not in self.texts:
            self.texts.append(text)
        return f" [dim][{self.texts.index(text) + 1}][/dim]"


def repeats_text(rates: list[float]) -> str:
    """The spread of a median's repeats: "median of 5: " and the slowest and fastest rates
    joined by an en dash; "" for one run."""
    if len(rates) < 2:
        return ""
    return f"median of {len(rates)}: {min(rates):,.0f}\u2013{max(rates):,.0f}"


def _cell(figure: Figure, unit: str, notes: _Notes) -> str:
    text = _format(figure.value, unit)
    seconds = figure.detail.get("seconds")
    if figure.value is not None and seconds is not None and unit == "jobs/s":
        text += f" ({seconds:.2f} s)"
    if figure.value is not None and (spread := repeats_text(figure.detail.get("repeats", []))):
        text += f"\n[dim]{spread}[/dim]"
    per_job = figure.detail.get("transactions_per_job")
    if figure.value is not None and per_job is not None:
        text += f"\n[dim]{per_job:.2f} xact/job[/dim]"
    net = figure.detail.get("jobs_per_s_after_startup")
    if figure.value is not None and net is not None:
        text += f"\n[dim]{net:,.0f} jobs/s net of start-up[/dim]"
    return text + notes.mark(figure.note)


def _ratio_cell(row: Row) -> str:
    ratio = row.ratio
    if ratio is None:
        return "n/a"
    good = ratio >= 1 if row.better == "higher" else ratio <= 1
    colour = "green" if good else "red"
    return f"[{colour}]{ratio:.2f}x[/{colour}]"


def print_table(rows: list[Row], console: Console, title: str) -> None:
    notes = _Notes()
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("gw", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("gw/baseline", justify="right")
    table.add_column("better")
    for row in rows:
        table.add_row(
            row.title, _cell(row.gw, row.unit, notes),
            f"[dim]{row.baseline_label}[/dim] " + _cell(row.baseline, row.unit, notes),
            _ratio_cell(row), row.better,
        )
    console.print(table)
    for number, text in enumerate(notes.texts, 1):
        console.print(f"[dim][{number}][/dim] {text}", highlight=False)


def write_json(path: Path, rows: list[Row], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**meta, "rows": [row.as_json() for row in rows]}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
