"""The one table a benchmark run produces, printed and written as JSON and Markdown.

Each :class:`Row` is one figure (median, min and max over repetitions) with its
unit, an optional target and whether the median meets it; a benchmark that
could not run gives one row saying why (``skipped``). Notes below the table say
how things were measured and, for a missed target, where the time goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .stats import Figure, format_value

__all__ = ["Report", "Row"]

_HEADER = ("benchmark", "figure", "median", "min", "max", "unit", "reps", "target", "status")


@dataclass(frozen=True, slots=True)
class Row:
    benchmark: str
    figure_name: str
    unit: str = ""
    figure: Figure | None = None
    target: str = ""
    #: whether the median meets the target; None without a target
    met: bool | None = None
    #: why there is no figure (a skipped benchmark), or a short remark
    note: str = ""
    #: the benchmark broke (a job failed, a worker died): what went wrong
    error: str = ""

    @property
    def status(self) -> str:
        if self.error:
            return "FAILED"
        if self.figure is None:
            return "skipped"
        if self.met is None:
            return ""
        return "met" if self.met else "MISSED"

    def cells(self) -> tuple[str, ...]:
        if self.figure is None:
            why = self.error or self.note
            return (self.benchmark, self.figure_name, "—", "—", "—", self.unit, "0", self.target,
                    f"{self.status}: {why}")
        fig = self.figure
        status = self.status + (f" ({self.note})" if self.note else "")
        return (self.benchmark, self.figure_name, format_value(fig.median), format_value(fig.min),
                format_value(fig.max), self.unit, str(fig.reps), self.target, status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "figure": self.figure_name,
            "unit": self.unit,
            "value": None if self.figure is None else self.figure.as_dict(),
            "target": self.target or None,
            "met": self.met,
            "status": self.status,
            "note": self.note or None,
            "error": self.error or None,
        }


@dataclass
class Report:
    scale: str
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    #: how each figure was measured, and where the time goes
    notes: list[str] = field(default_factory=list)
    #: structured details (query plans, profiles, raw repetitions)
    details: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        """The rows as a Markdown table, padded so that it reads as plain text too."""
        lines = [_HEADER, *(row.cells() for row in self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]

        def fmt(cells: tuple[str, ...]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([fmt(lines[0]), rule, *(fmt(cells) for cells in lines[1:])])

    def as_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "machine": self.machine,
            "rows": [row.as_dict() for row in self.rows],
            "notes": self.notes,
            "details": self.details,
        }

    def markdown(self) -> str:
        machine = "\n".join(f"- {key}: {value}" for key, value in self.machine.items())
        notes = "\n".join(f"- {note}" for note in self.notes)
        parts = [f"# podflow benchmarks ({self.scale})", "## Machine", machine, "## Results", self.table()]
        if notes:
            parts += ["## Notes", notes]
        plans = self.details.get("sweep_query_plans")
        if plans:
            parts += ["## Sweep query plans", _plans_markdown(plans)]
        return "\n\n".join(parts) + "\n"

    def write(self, out_dir: Path, stem: str) -> tuple[Path, Path]:
        """Write ``stem.json`` and ``stem.md`` into ``out_dir``; their paths."""
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
        json_path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        md_path.write_text(self.markdown(), encoding="utf-8")
        return json_path, md_path


def _plans_markdown(plans: list[dict[str, Any]]) -> str:
    blocks = []
    for plan in plans:
        verdict = "uses an index" if plan["indexed"] else "SCANS THE TABLE"
        body = "\n".join(plan["plan"])
        blocks.append(f"`{plan['statement']}` — {verdict}\n\n```\n{body}\n```")
    return "\n\n".join(blocks)
