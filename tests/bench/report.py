"""Plain-text tables and their JSON form: what the benchmark prints and what ``--json`` writes."""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

Cell = str | int | float | None


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str
    spec: str = ""  # format spec for numbers, e.g. ",.1f"

    def cell(self, value: Cell) -> str:
        if value is None:
            return "-"
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return format(value, self.spec) if self.spec and not isinstance(value, str) else str(value)


@dataclass(slots=True)
class Table:
    key: str
    title: str
    columns: list[Column]
    notes: list[str] = field(default_factory=list)
    rows: list[dict[str, Cell]] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)

    def add(self, **row: Cell) -> None:
        unknown = set(row) - {c.key for c in self.columns}
        if unknown:
            raise ValueError(f"{self.key}: no column for {sorted(unknown)}")
        self.rows.append(row)

    def render(self) -> str:
        cells = [[c.header for c in self.columns]]
        cells += [[c.cell(row.get(c.key)) for c in self.columns] for row in self.rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(self.columns))]
        # Text columns (first value a str) are left-aligned, numbers right-aligned.
        left = [bool(self.rows) and isinstance(self.rows[0].get(c.key), str) for c in self.columns]

        def line(values: list[str]) -> str:
            parts = [
                v.ljust(w) if is_left else v.rjust(w)
                for v, w, is_left in zip(values, widths, left, strict=True)
            ]
            return "  ".join(parts).rstrip()

        out = [f"== {self.title}"]
        out += [f"   {note}" for note in self.notes]
        out.append(line(cells[0]))
        out.append("  ".join("-" * w for w in widths))
        out += [line(values) for values in cells[1:]]
        out += self.footer
        return "\n".join(out)

    def to_json(self) -> dict[str, object]:
        return {
            "title": self.title,
            "notes": self.notes,
            "columns": [{"key": c.key, "header": c.header} for c in self.columns],
            "rows": self.rows,
            "footer": self.footer,
        }


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in ("aes", "pclmulqdq", "avx2", "avx512f", "vaes", "sha_ni") if f in present]
    return []


def machine() -> dict[str, object]:
    from importlib.metadata import version

    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 0
    return {
        "nproc": available,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cryptography": version("cryptography"),
        "liboqs_python": version("liboqs-python"),
        "loadavg_at_start": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: on a shared host, other work shows up in medians and p99."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def render_machine(info: dict[str, object]) -> str:
    flags = info["cpu_flags"]
    flag_text = " ".join(str(f) for f in flags) if isinstance(flags, list) else ""
    return "\n".join(
        [
            "== Machine",
            (
                f"   nproc {info['nproc']} (cpu_count {info['cpu_count']}), CPU: {info['cpu_model']}"
                f" [{flag_text}]"
            ),
            f"   Python {info['python']} ({info['implementation']}) on {info['platform']}",
            f"   cryptography {info['cryptography']}, liboqs-python {info['liboqs_python']}",
            f"   load average at start (1/5/15 min): {info['loadavg_at_start']}",
        ]
    )
