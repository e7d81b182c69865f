"""build/rehearsal/report.json, and the table `make rehearsal` prints from it."""

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from rehearsal.api import Json

COLUMNS = [
    ("scenario", "scenario"),
    ("outcome", "outcome"),
    ("final traffic", "final_traffic"),
    ("requests", "client_requests"),
    ("5xx", "client_5xx"),
    ("conn err", "client_connection_errors"),
    ("stale", "stale_reads"),
    ("seconds", "duration_s"),
    ("test", "test"),
]


def write(entries: Iterable[Json], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(entries), indent=2) + "\n")


def read(path: Path) -> list[Json]:
    entries: list[Json] = json.loads(path.read_text())
    return entries


def traffic_text(split: Mapping[str, int], service: str = "birthday-api") -> str:
    return ", ".join(f"{name.removeprefix(service + '-')} {percent}%" for name, percent in sorted(split.items())) or "-"


def table(entries: Iterable[Json]) -> str:
    rows = [[title for title, _ in COLUMNS]]
    for entry in entries:
        row = []
        for _, key in COLUMNS:
            value = entry.get(key, "")
            if key == "final_traffic" and isinstance(value, dict):
                value = traffic_text(value)
            if key == "outcome" and not value:
                value = f"error: {entry.get('error', '?')}"[:60]
            row.append(str(value))
        rows.append(row)
    widths = [max(len(row[index]) for row in rows) for index in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
