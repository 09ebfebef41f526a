"""The metrics reader interface: what one source of metrics offers for one sub-experiment folder.

A reader owns some files of a sub-experiment folder (`globs`, relative to it) and turns them
into a *summary* (final values: `{"test_acc": 0.91}`) and/or *rows* (one dict per logged
step: `{"step": 10, "loss": 0.4}`), streamed so that a 200 MB log is never held in memory.
The folder walking, merging and the step keys are done once, by `metarunlog.metrics.sources`,
for every reader alike.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from metarunlog.errors import CorruptRecord, MrlError

# Keys that place a row on the x axis (a curve's step), never metric columns; the first one
# a row holds is its step. `.mrl.cfg` `metrics.step_keys` replaces this list. Each also
# capitalised (after all of them): a hand-written CSV's header says `Epoch` or `Step`.
_STEP_NAMES = (
    "step",
    "global_step",
    "iteration",
    "iter",
    "_step",
    "epoch",
    "wall_time",
    "time",
    "timestamp",
    "walltime",
    "date",
)
DEFAULT_STEP_KEYS = _STEP_NAMES + tuple(k.capitalize() for k in _STEP_NAMES if not k.startswith("_"))


@dataclass(frozen=True)
class Columns:
    """A batch of rows as columns: every row holds every name (`columns[i][r]` is row r's
    `names[i]`), in a reader's order."""

    names: list[str]
    columns: list[list[Any]]

    def rows(self) -> Iterator[dict[str, Any]]:
        return map(dict, map(functools.partial(zip, self.names), zip(*self.columns, strict=True)))  # type: ignore[call-overload, no-any-return]


class ColumnarRows:
    """Rows (an iterator of dicts, as `Reader.read_rows` returns) that a reader read as
    batches: `batches()` gives each as `Columns` or as a list of dicts, so that a consumer
    that can (`Accumulator.add`) takes a column without a dict per row (CSV). Iterate it or
    take its batches, once, not both."""

    def __init__(self, batches: Iterator[Columns | list[dict[str, Any]]]) -> None:
        self._batches = batches
        self._dicts: Iterator[dict[str, Any]] | None = None

    def batches(self) -> Iterator[Columns | list[dict[str, Any]]]:
        return self._batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._dicts is None:
            self._dicts = self._each()
        return self._dicts

    def __next__(self) -> dict[str, Any]:
        return next(iter(self))

    def _each(self) -> Iterator[dict[str, Any]]:
        for batch in self._batches:
            yield from batch.rows() if isinstance(batch, Columns) else batch


# The longest line of a metrics text file (jsonl, csv, a log) that a reader takes in: a line
# of metrics is a few hundred bytes; a longer one holds a dumped array or a blob (or is no
# line at all: a binary file), and is skipped unread, with a warning, so that memory stays
# bounded whatever the file holds. Files are read in blocks of LINE_BLOCK.
MAX_LINE = 1 << 20
LINE_BLOCK = 1 << 20


@dataclass
class LongLines:
    """The lines of one file past MAX_LINE, skipped unread: how many, and the first's number."""

    count: int = 0
    first: int = 0

    def note(self, lineno: int) -> None:
        self.count += 1
        self.first = self.first or lineno

    def message(self, path: Path) -> str:
        return (
            f"{path}: skipped {self.count} line(s) longer than {MAX_LINE >> 20} MiB, the most mrl reads "
            f"of one line (the first: line {self.first})"
        )


def line_blocks(
    f: Any, on_long: Callable[[int], None], *, block: int = LINE_BLOCK, limit: int = MAX_LINE, cr: bool = False
) -> Iterator[list[Any]]:
    """The lines of `f` (binary, or text opened with newline=""), with their line ends, a
    block's worth at a time, never holding one longer than `limit`: such a line is read
    past, an empty line (`"\n"`) in its place so that line numbers still count it, and
    `on_long(its line number)` is called. `cr`: a lone `\r` ends a line too (a text file
    with newline="", as the csv module reads it)."""
    nl = b"\n" if isinstance(f.read(0), bytes) else "\n"
    split = io.BytesIO if isinstance(nl, bytes) else functools.partial(io.StringIO, newline="")
    ends = (nl, "\r") if cr else (nl,)
    before = 0  # lines given
    tail = nl[:0]  # the start of a line that the blocks before did not end (or a "\r" that may be "\r\n")
    overlong = False  # inside a line too long to keep: read past up to its line end
    while data := f.read(block):
        lines = split(data).readlines()
        del data
        if overlong:
            if len(lines) == 1 and not lines[0].endswith(ends):
                continue
            lines[0] = nl  # the long line's place
            overlong = False
        elif tail:
            lines[0:1] = split(tail + lines[0]).readlines()
        tail = nl[:0]
        if not lines[-1].endswith(nl):  # cut by the block (or a "\r" the next block may end as "\r\n")
            tail = lines.pop()
            if len(tail) > limit:
                overlong, tail = True, nl[:0]
                on_long(before + len(lines) + 1)
        if not lines:
            continue
        if max(map(len, lines)) > limit:
            for i, line in enumerate(lines):
                if len(line) > limit:
                    lines[i] = nl
                    on_long(before + i + 1)
        yield lines
        before += len(lines)
    if overlong:
        yield [nl]
    elif tail:
        yield [tail]


class MissingExtra(MrlError):
    """A reader's optional dependency is not installed; the message is the one-line hint.

    Raised from `summary()`: the folder's other readers are still read and the hint is
    shown once as a warning, not as an error."""


class CutShort(CorruptRecord):
    """A summary file that does not parse (empty, or cut mid-value): what a step stopped
    while writing it leaves. `Finder.read` reports it as an error only when the step ended
    `done`; otherwise (failed, cancelled, timeout...) as a warning, its values left out."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"corrupt record {path}: {why}; fix or remove the file")
        self.path, self.why = path, why


class NotUtf8(CorruptRecord):
    """A summary file holding bytes that are not UTF-8 (written in another encoding, or a
    binary copied over it): not something a stopped step leaves, so an error whatever its
    sub-experiment's state, naming the first such byte and its offset."""

    def __init__(self, path: Path, data: bytes, offset: int) -> None:
        super().__init__(
            f"{path} is not UTF-8 (byte 0x{data[offset]:02x} at offset {offset}): a summary is JSON in UTF-8, "
            "so its values are left out; write it with open(path, 'w', encoding='utf-8'), or fix or remove the file"
        )
        self.path, self.offset = path, offset


def not_utf8_at(data: bytes) -> int | None:
    """The offset of the first byte of `data` that is no UTF-8; None when it all is, or
    when only its last character is cut (a file cut short mid-write, not another encoding)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None if e.reason == "unexpected end of data" else e.start
    return None


def not_a_name(values: dict[Any, Any]) -> str | None:
    """`KEY (TYPE)` of the first key of a summary or row that is no str (a metric's name is a
    table column's), else None: a reader or metrics() returning `{1: 0.5}` is its error."""
    for key in values:
        if not isinstance(key, str):
            return f"{key!r} ({type(key).__name__})"
    return None


@dataclass(frozen=True)
class Source:
    """An extra glob from `.mrl.cfg` `metrics.sources`; `reader` None: chosen by file type."""

    glob: str
    reader: str | None = None


@dataclass(frozen=True)
class Settings:
    """The `.mrl.cfg` `metrics` block, as readers and results see it."""

    step_keys: tuple[str, ...] = DEFAULT_STEP_KEYS
    sources: tuple[Source, ...] = ()
    off: frozenset[str] = frozenset()  # names of readers turned off
    patterns: tuple[str, ...] = ()  # run.log regexes with named groups
    log_files: tuple[str, ...] = ("run.log",)
    goals: dict[str, str] = field(default_factory=dict)  # metric -> "min" | "max"


class Reader:
    """Base class of a metrics reader; subclass it, set `name` and `globs`, and `register` it.

    `summary(files)` and `rows(files)` get the files of one sub-experiment folder that this
    reader matched (its `globs`, plus the `metrics.sources` globs whose file type it
    `accepts`), sorted. Raise `metarunlog.errors.CorruptRecord` naming the file for a file
    that cannot be read: the table reports it and keeps the other values (`CutShort` for a
    summary file that does not parse: a warning when its step failed or was stopped).
    """

    name: ClassVar[str] = ""  # what `.mrl.cfg` `metrics.sources` names it by
    globs: ClassVar[tuple[str, ...]] = ()  # the files it looks for and owns (`makebatch -replace` trashes them)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def active(self) -> bool:
        """False when this reader has nothing to do with these settings (say, no patterns)."""
        return True

    def looks_for(self) -> list[str]:
        """The globs this reader reads, for the `no metrics found` message and the trash."""
        return list(self.globs)

    def accepts(self, relpath: str) -> bool:
        """Whether a file found by a `metrics.sources` glob is of this reader's type."""
        return False

    def summary(self, files: list[Path]) -> dict[str, Any] | None:
        """Final values, or None when these files hold none."""
        return None

    def rows(self, files: list[Path]) -> Iterator[dict[str, Any]]:
        """One dict per logged step, in the order they were logged."""
        return iter(())

    def read_summary(self, files: list[Path], *, writing: bool) -> dict[str, Any] | None:
        """`summary(files)`, told whether the sub-experiment may be writing them right now
        (running or queued: what `Finder.read` calls). A reader whose summary file
        is written in pieces (metrics.json) then takes one that does not parse for one not
        written yet; the others need not override this."""
        return self.summary(files)

    def read_summary_noting(
        self, files: list[Path], *, writing: bool, warn: Callable[[str], None]
    ) -> dict[str, Any] | None:
        """`read_summary`, for mrl's own readers: `warn(line)` says what was left out (a
        file or a value past a cap), so it reaches `mrl table` and the report."""
        return self.read_summary(files, writing=writing)

    def read_rows(self, files: list[Path], *, ended: bool) -> Iterator[dict[str, Any]]:
        """`rows(files)`, told whether the sub-experiment's writer has ended by itself (what
        `Finder.read` calls). While it may still write, a text file's last line without its
        line end may be cut mid-number; once it ended, that line is whole. A reader of such
        files (csv, log) overrides this; the others need not."""
        return self.rows(files)

    def read_rows_noting(
        self, files: list[Path], *, ended: bool, warn: Callable[[str], None]
    ) -> Iterator[dict[str, Any]]:
        """`read_rows`, for mrl's own readers: `warn(line)` says what was skipped (once a
        file's rows are consumed), so it reaches `mrl table` and the report."""
        return self.read_rows(files, ended=ended)
