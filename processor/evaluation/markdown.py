"""Markdown and CSV tables (plain text, no dependency).

``markdown_table(header [str], rows [[value]]) -> str``; ``csv_text(header, rows) -> str``;
floats are written with ``float_format`` (default two decimals), None as an empty cell / "-".
"""
from __future__ import annotations

import csv
import io
from typing import Any, Sequence

__all__ = ["markdown_table", "csv_text", "fmt"]


def fmt(value: Any, float_format: str = "{:.2f}", empty: str = "-") -> str:
    if value is None:
        return empty
    if isinstance(value, float):
        return float_format.format(value)
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], float_format: str = "{:.2f}") -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v, float_format).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]], float_format: str = "{:.4f}") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([fmt(v, float_format, empty="") for v in row])
    return buffer.getvalue()
