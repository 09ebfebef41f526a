"""Values as a person reads them (tables, reports, progress lines). No terminal state here:
`results` and `report` format with these without importing the live progress display."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote


def fmt_duration(seconds: float | None) -> str:
    """`12.5s` under a minute, else `1:05` or `2:01:05`; empty for None."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# Control characters as their escapes: a newline in a param value would print a line that
# reads as another row (`001  a  done  99`), an ESC would drive the user's terminal.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127, *range(0x80, 0xA0))} | {9: "\\t", 10: "\\n", 13: "\\r"}


def relative_url(path: str | Path, start: Path) -> str:
    """`path` as a relative URL from the page in folder `start`: a file name is a URL once
    in `href`/`src`, so `run #1.mp4` opened `run ` (the rest read as the fragment) and
    `95%.png` a percent escape; each part is percent-encoded, `/` kept."""
    p = Path(path)
    rel = os.path.relpath(p, start) if p.is_absolute() else str(p)
    return quote(Path(rel).as_posix())


def cell_width(text: str) -> int:
    """How many terminal cells `text` takes: East Asian wide characters (损失) take two,
    combining marks none, so that columns of names in any script line up."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, width: int, right: bool = False) -> str:
    """`text` padded with spaces to `width` terminal cells (`str.ljust`/`rjust` count characters)."""
    fill = " " * max(0, width - cell_width(text))
    return fill + text if right else text + fill


def printable(text: str) -> str:
    """`text` with control characters (newline, ESC, ...) written as escapes, for one line of a terminal."""
    return text if text.isprintable() else text.translate(_CONTROL)


# A log line is shown (the run's failure tail, the report) up to this many characters: one
# progress dump or JSON blob of 64 KiB on a line buried the lines around it, in a terminal
# and in the report alike.
LOG_LINE_MAX = 500
_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]?")  # a terminal control sequence (colour: ESC [ 31 m)


def cut_line(line: str, width: int = LOG_LINE_MAX) -> str:
    """`line`, or its first `width` characters and a marker saying how many were cut
    (`... [line cut: 64,980 more characters]`). Cut as text, before any escaping (HTML,
    terminal escapes), so no character, entity or escape is split; never inside a
    terminal control sequence, nor between a character and its combining marks."""
    if len(line) <= width:
        return line
    cut = width
    for m in _CSI.finditer(line, max(0, width - 64), width + 64):
        if m.start() < cut < m.end():
            cut = m.start()  # the whole sequence goes: half of one would swallow the marker
    if not line.isascii():
        import unicodedata

        while cut > 0 and unicodedata.combining(line[cut]):
            cut -= 1
    return f"{line[:cut]}... [line cut: {len(line) - cut:,} more characters]"


def format_value(value: Any, column: str = "") -> str:
    """A value as a person reads it: floats to 6 significant digits, durations as 1:05."""
    if value is None:
        return ""
    if column == "duration" and isinstance(value, (int, float)):
        return fmt_duration(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, default=str)
    return str(value)
