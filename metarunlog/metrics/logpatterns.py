"""Metrics printed by the script: lines of `run.log` matched by the regexes of `.mrl.cfg`
`metrics.patterns`, each with named groups:

    "metrics": {"patterns": ["epoch (?P<epoch>\\\\d+) .* val_acc=(?P<val_acc>[0-9.]+)"]}

Every match is one row `{group name: value}` (numbers become ints or floats; a group that
did not take part, or matched only blanks, is left out). A row without a step key (`epoch`,
`step`, ...) takes the step of the rows before it, as a line printed after `epoch 3 ...` (or
a second pattern matching the same line) belongs to epoch 3. Off until a pattern is set;
`metrics.log_files` changes which files are searched (default `run.log`). Lines are streamed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from metarunlog.jsonio import special_kind
from metarunlog.metrics.base import LongLines, Reader, Settings, line_blocks
from metarunlog.metrics.csvfiles import complete_lines, parse_value
from metarunlog.metrics.registry import register


@register
class LogPatternReader(Reader):
    name = "log"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.patterns = [re.compile(p) for p in settings.patterns]

    def active(self) -> bool:
        return bool(self.patterns)

    def looks_for(self) -> list[str]:
        return list(self.settings.log_files)

    def accepts(self, relpath: str) -> bool:
        return relpath.endswith((".log", ".txt", ".out"))

    def rows(self, files: list[Path]) -> Iterator[dict[str, Any]]:
        return self.read_rows(files, ended=False)

    def read_rows(self, files: list[Path], *, ended: bool) -> Iterator[dict[str, Any]]:
        return self.read_rows_noting(files, ended=ended, warn=lambda message: None)

    def read_rows_noting(
        self, files: list[Path], *, ended: bool, warn: Callable[[str], None]
    ) -> Iterator[dict[str, Any]]:
        steps = self.settings.step_keys
        for path in files:
            long = LongLines()
            yield from with_steps(iter_matches(path, self.patterns, ended=ended, long=long), steps)
            if long.count:
                warn(long.message(path))


def iter_matches(
    path: Path, patterns: list[re.Pattern[str]], *, ended: bool = False, long: LongLines | None = None
) -> Iterator[dict[str, Any]]:
    """One row per match (its named groups), in file order: line by line, pattern by pattern.
    A last line without its line end is matched only once its writer has `ended`; one
    longer than MAX_LINE (output printed without line ends) is skipped unread, noted
    in `long`."""
    if special_kind(path):  # a FIFO: reading it would wait for a writer
        return
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed below)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return
    with f:
        ours = path.name == RUN_LOG
        if ours:
            f.seek(this_attempt_offset(path))
        lines = itertools.chain.from_iterable(line_blocks(f, (long or LongLines()).note))
        for line in lines if ended else complete_lines(lines):  # a line still being written may end mid-number
            if ours and line.startswith(_HEADER_TEXT):
                continue  # mrl's header quotes the command, which may look like a metric
            for rx in patterns:
                for m in rx.finditer(line):
                    # a group that took no part, or matched only blanks, is no value (a blank CSV cell)
                    row = {k: parse_value(v) for k, v in m.groupdict().items() if v is not None and v.strip()}
                    if row:
                        yield row


RUN_LOG = "run.log"  # experiment.LOG: mrl's own log, one `==== mrl attempt N step K/M ...` header per step
_HEADER = b"==== mrl attempt "
_HEADER_TEXT = _HEADER.decode()
# a header of an attempt's first step: `==== mrl attempt N step 1/M on ...` (the command it
# quotes comes after the host, so " step 1/" in it says nothing)
_FIRST_STEP = re.compile(rb"==== mrl attempt \d+ step 1/\d+ on ")


def this_attempt_offset(path: Path) -> int:
    """Where the latest attempt that started at step 1 begins in `run.log` (0: none found).

    run.log keeps every attempt; the metrics of an earlier attempt (a failed one, or the
    run before a `--force`) are not this one's (a resumed attempt's earlier steps are)."""
    import mmap

    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            end = len(m)
            while (at := m.rfind(_HEADER, 0, end)) >= 0:
                if (at == 0 or m[at - 1 : at] == b"\n") and _FIRST_STEP.match(m, at):
                    return at
                end = at
    except (OSError, ValueError):  # empty file (mmap refuses), or unreadable
        pass
    return 0


def with_steps(rows: Iterator[dict[str, Any]], step_keys: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Rows without a step key get the step keys of the last row that had some."""
    current: dict[str, Any] = {}
    for row in rows:
        here = {k: row[k] for k in step_keys if k in row}
        if here:
            current = here
        elif current:
            row = {**current, **row}
        yield row
