"""`metrics.json` (a summary: one JSON object of final values) and `metrics.jsonl` (one JSON
object per line, one line per logged step), plus any `.json` / `.jsonl` a source glob finds.
A `.json` file that is a list of objects (one per step or epoch) or Keras' `history.history`
(an object of lists of numbers) is rows, as a `.jsonl`'s (`read_json`). A `.json` file over
MAX_JSON_BYTES is not parsed and a value over MAX_VALUE_CHARS is left out; a `.jsonl` line
over MAX_LINE_BYTES is skipped unread; each with a warning naming the file.

`metrics.jsonl` is read in chunks of about 1 MB, each parsed with one `json.loads` of its
lines joined into an array when that is exact (flat objects, one a line: see `_flat_lines`),
else by json's C scanner line by line (both about twice as fast as one `json.loads` per
line), so memory stays bounded however long the file is. A chunk that is not clean JSON
lines (a half-written last line while the run goes on, a blank line, bad UTF-8, a line
nested too deep to parse) is parsed line by line and its bad lines skipped: a line that is
not a JSON object (a bare number, a list, garbage), or not UTF-8 (never read with
replacement characters, which would give a name or value not in the file), is one warning
per file naming the first such line and the count, except a last line still being written
(no line end while the sub-experiment runs).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metarunlog.errors import CorruptRecord
from metarunlog.metrics.base import (
    MAX_LINE,
    CutShort,
    LongLines,
    NotUtf8,
    Reader,
    Settings,
    line_blocks,
    not_utf8_at,
)
from metarunlog.metrics.registry import register

SUMMARY = "metrics.json"
LINES = "metrics.jsonl"
CHUNK_BYTES = 1 << 20
# The longest line of a metrics.jsonl that is read (1 MiB: a line of metrics is a few hundred
# bytes; a longer one holds an array or a blob, and is skipped, with a warning).
MAX_LINE_BYTES = MAX_LINE
# The largest `.json` file that is parsed (64 MiB: a summary is a few KB, a list of a
# dict per epoch a few MB; json.loads holds several times a file's size).
MAX_JSON_BYTES = 64 << 20
# The longest value of a `.json` file that is kept (a string's characters, a list's or
# object's as JSON): a longer one (a dumped array, a log in a string) is left out, named.
MAX_VALUE_CHARS = 100_000


@register
class JsonReader(Reader):
    name = "json"
    globs = (SUMMARY, LINES)

    def accepts(self, relpath: str) -> bool:
        return relpath.endswith((".json", ".jsonl"))

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._series: dict[Path, JsonFile] = {}  # the last folder's series files, read with its summary

    def summary(self, files: list[Path]) -> dict[str, Any] | None:
        return self.read_summary(files, writing=False)

    def read_summary(self, files: list[Path], *, writing: bool) -> dict[str, Any] | None:
        return self.read_summary_noting(files, writing=writing, warn=lambda message: None)

    def read_summary_noting(
        self, files: list[Path], *, writing: bool, warn: Callable[[str], None]
    ) -> dict[str, Any] | None:
        # `json.dump(d, open("metrics.json", "w"))` writes in pieces: while its step may still
        # write, a file that does not parse yet is not written yet, never "corrupt"
        self._series = {}
        out: dict[str, Any] | None = None
        for path in files:
            if path.suffix != ".json":
                continue
            got = read_json(path, writing=writing)
            for message in got.notes:
                warn(message)
            if got.rows is not None:
                self._series[path] = got  # its rows are the folder's next read (read_rows_noting)
            if got.summary and not got.too_big:  # rows can come with some (a history's short lists)
                out = {**(out or {}), **got.summary}
        return out

    def rows(self, files: list[Path]) -> Iterator[dict[str, Any]]:
        return self.read_rows_noting(files, ended=False, warn=lambda message: None)

    def read_rows_noting(
        self, files: list[Path], *, ended: bool, warn: Callable[[str], None]
    ) -> Iterator[dict[str, Any]]:
        for path in files:
            if path.suffix == ".json":  # a list of dicts, or a dict of lists (Keras' history)
                got = self._series.pop(path, None)
                if got is None:  # not read with the summary (rows() alone): once more
                    try:
                        got = read_json(path)
                    except CorruptRecord:
                        continue  # the summary's error
                yield from got.rows or ()
                continue
            if path.suffix != ".jsonl":
                continue
            skipped = Skipped(ended)
            yield from iter_jsonl(path, skipped=skipped)
            for message in skipped.messages(path):
                warn(message)


@dataclass
class Skipped:
    """The lines of one file that were skipped, by why; `ended`: its writer ended, so an
    unterminated last line is whole (while it runs, that line may be half-written)."""

    ended: bool = True
    count: int = 0  # not JSON objects
    first: int = 0
    not_utf8: int = 0
    first_not_utf8: int = 0
    long: LongLines = field(default_factory=LongLines)

    def note(self, lineno: int, line: bytes) -> None:
        if not self.ended and not line.endswith(b"\n"):
            return  # only the file's last line can lack its line end: still being written
        self.count += 1
        self.first = self.first or lineno

    def note_not_utf8(self, lineno: int, line: bytes) -> None:
        if not self.ended and not line.endswith(b"\n"):
            return  # cut inside a character, while still being written
        self.not_utf8 += 1
        self.first_not_utf8 = self.first_not_utf8 or lineno

    def messages(self, path: Path) -> list[str]:
        out = []
        if self.count:
            out.append(f"{path}: skipped {self.count} line(s) that are not JSON objects (the first: line {self.first})")
        if self.not_utf8:
            out.append(
                f"{path}: skipped {self.not_utf8} line(s) that are not UTF-8 (the first: line "
                f"{self.first_not_utf8}), so as not to read wrong names or values from them"
            )
        if self.long.count:
            out.append(self.long.message(path))
        return out


@dataclass
class JsonFile:
    """What one `.json` file holds: a summary (one object of final values), or `rows` (a
    list of objects, one per step or epoch; or an object of lists, Keras'
    `history.history`), and `notes` (warnings: what was left out, and why)."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)
    too_big: bool = False


def read_summary(path: Path, *, writing: bool = False) -> dict[str, Any]:
    """A summary file as a dict ({} for a file of rows, see `read_json`); CorruptRecord
    naming it when it is not a JSON object nor a list of them (`writing`: its writer may be
    writing it now, so one that does not parse is empty)."""
    return read_json(path, writing=writing).summary


def read_json(path: Path, *, writing: bool = False) -> JsonFile:
    """One `.json` file: a summary, or rows (see `JsonFile`). A file over MAX_JSON_BYTES is
    not parsed, and a value over MAX_VALUE_CHARS is left out, each with a note."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return JsonFile({})
    except OSError as e:  # a folder of that name, unreadable
        raise CorruptRecord(f"cannot read {path}: {e.strerror or e}; fix or remove it") from e
    if len(raw) > MAX_JSON_BYTES:
        note = (
            f"{path} is larger than {MAX_JSON_BYTES >> 20} MiB, the most mrl reads of a .json file, "
            "so its values are left out (write a metrics.jsonl for long series, or keep large data in another file)"
        )
        return JsonFile({}, notes=[note], too_big=True)
    try:
        data = json.loads(raw)  # bytes: UTF-8 (or the UTF-16/32 JSON allows); not UTF-8 is a ValueError
    except ValueError as e:
        bad = not_utf8_at(raw)
        if bad is not None:  # another encoding: no write still under way makes that, and none ends it
            raise NotUtf8(path, raw, bad) from None
        if writing:
            return JsonFile({})
        raise CutShort(path, str(e)) from e
    except RecursionError:  # json's parser past ~1,000 levels of [ or {: not a summary either
        raise CorruptRecord(f"corrupt record {path}: nested too deep to read; fix or remove the file") from None
    big = len(raw) > MAX_VALUE_CHARS  # else no value can be over it
    del raw
    if isinstance(data, list):
        return _list_rows(path, data, big)
    if not isinstance(data, dict):
        raise CorruptRecord(f'{path} must hold a JSON object {{"name": value, ...}} or a list of them')
    if data and all(type(v) is list for v in data.values()) and any(data.values()):
        history = _history(path, data)
        if history is not None:
            return history
    notes: list[str] = []
    return JsonFile(_capped(path, data, notes) if big else data, notes=notes)


def _list_rows(path: Path, data: list[Any], big: bool) -> JsonFile:
    """A list of objects (one per step: `json.dump(history, f)` of a list of dicts, pandas'
    `to_json(orient="records")`) as rows, in order; items that are no object are skipped."""
    rows = [d for d in data if type(d) is dict]
    if data and not rows:
        raise CorruptRecord(f'{path} must hold a JSON object {{"name": value, ...}} or a list of them')
    notes = []
    if len(rows) < len(data):
        first = next(i for i, d in enumerate(data, 1) if type(d) is not dict)
        skipped = len(data) - len(rows)
        notes.append(f"{path}: skipped {skipped} item(s) that are not JSON objects (the first: item {first})")
    if big:
        rows = [_capped(path, d, notes) for d in rows]
    return JsonFile({}, rows=rows, notes=notes)


def _history(path: Path, data: dict[str, list[Any]]) -> JsonFile | None:
    """Keras' `history.history` (`{"loss": [...], "val_loss": [...]}`: one list a metric,
    one value an epoch) as rows: row i holds each list's i-th value (a `null`, as
    `json.dump` writes nothing else for a missing one, is no value). None when some list
    holds anything but numbers and nulls: then it is a summary whose values are lists.

    A list shorter than the others (Keras' `validation_freq`: `val_*` hold one value every
    k epochs, or at the epochs a list names, which the file does not say) cannot have its
    values put on their epochs: it gives its last value as a summary, no curve, and one
    note says so."""
    for values in data.values():
        if not all(v is None or type(v) in (int, float) for v in values):
            return None
    n = max(map(len, data.values()))
    full = {k: v for k, v in data.items() if len(v) == n}
    rows = [{k: v[i] for k, v in full.items() if v[i] is not None} for i in range(n)]
    short = {k: v for k, v in data.items() if len(v) < n}
    if not short:
        return JsonFile({}, rows=rows)
    summary = {
        k: last for k, v in short.items() if (last := next((x for x in reversed(v) if x is not None), None)) is not None
    }
    names = ", ".join(f"{k[:80]!r} ({len(v)})" for k, v in list(short.items())[:5]) + (
        ", ..." if len(short) > 5 else ""
    )
    note = (
        f"{path}: lists shorter than its {n} rows: {names}; which epochs their values belong to is not "
        "in the file (Keras' validation_freq), so each gives its last value, no curve and no step"
    )
    return JsonFile(summary, rows=rows, notes=[note])


def _capped(path: Path, d: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """`d` without its values over MAX_VALUE_CHARS (a string's length; a list's or an
    object's as JSON), each named in one note."""
    out = {}
    for k, v in d.items():
        if isinstance(v, str):
            size = len(v)
        elif isinstance(v, (list, dict)):
            size = len(json.dumps(v))
        else:
            size = 0
        if size > MAX_VALUE_CHARS:
            note = (
                f"{path}: the value of {k[:80]!r} is {size:,} characters long, more than the "
                f"{MAX_VALUE_CHARS:,} mrl keeps of a value, so it is left out"
            )
            if note not in notes:
                notes.append(note)
            continue
        out[k] = v
    return out


def iter_jsonl(
    path: Path, chunk_bytes: int = CHUNK_BYTES, *, skipped: Skipped | None = None
) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one a line, streamed; other lines are skipped
    (and noted in `skipped`; blank lines are not)."""
    return itertools.chain.from_iterable(_chunks(path, chunk_bytes, skipped))  # rows handed out in C


def _chunks(path: Path, chunk_bytes: int, skipped: Skipped | None = None) -> Iterator[list[dict[str, Any]]]:
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed by the with below; a missing file is no rows)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return
    with f:
        before = 0  # lines in the chunks before, for the line numbers of skipped ones
        for lines in line_blocks(f, (skipped or Skipped()).long.note, block=chunk_bytes, limit=MAX_LINE_BYTES):
            yield _parse_chunk(lines, before, skipped)
            before += len(lines)


_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # C: one value from an index, and where it ended
_OPEN = b"{"


def _flat_lines(lines: list[bytes]) -> list[dict[str, Any]] | None:
    """The chunk as one `json.loads` of its lines joined into an array, when that is exact:
    every line starts with `{` and the chunk holds no other `{` (no nested object, no `{` in
    a string). Then each line's object is the one opened at its start and closed before
    the next line's (a string cannot span a line end: a raw newline is not JSON), so N
    dicts are the N lines. Without the check, lines that are each cut (`{"x": [1`, `2]}`)
    joined into one object, and a line holding two objects made the count match."""
    braces = itertools.repeat(_OPEN)
    if not all(map(bytes.startswith, lines, braces)) or sum(map(bytes.count, lines, braces)) != len(lines):
        return _whole_lines(lines)
    items = json.loads(b"[" + b",".join(lines) + b"]")  # a temporary: json.loads drops it once decoded
    if len(items) == len(lines) and all(type(d) is dict for d in items):
        return items  # type: ignore[no-any-return]
    return None


def _whole_lines(lines: list[bytes]) -> list[dict[str, Any]] | None:
    """Each line parsed as exactly one JSON object (nothing but spaces after it) by json's C
    scanner, or None when some line is not (nested objects: about 1.3x the joined parse)."""
    pieces = b"".join(lines).decode("utf-8").split("\n")
    if pieces[-1] == "":
        pieces.pop()  # after the chunk's last line end
    out = []
    for piece in pieces:
        d, end = _scan(piece, 0)
        if type(d) is not dict or (end != len(piece) and piece[end:].strip(" \t\r")):
            return None
        out.append(d)
    return out


def _parse_chunk(lines: list[bytes], before: int = 0, skipped: Skipped | None = None) -> list[dict[str, Any]]:
    try:
        items = _flat_lines(lines)
        if items is not None:
            return items
    # not UTF-8, a line that is no JSON value (StopIteration), or nested past the parser's depth
    except (ValueError, StopIteration, RecursionError):
        pass
    out = []
    for i, line in enumerate(lines, before + 1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8-sig")  # -sig: a BOM before the first line
        except UnicodeDecodeError:  # never read with replacement characters: a wrong name or value
            if skipped is not None:
                skipped.note_not_utf8(i, line)
            continue
        try:
            d = json.loads(text)
        except (ValueError, RecursionError):
            d = None
        if isinstance(d, dict):
            out.append(d)
        elif skipped is not None:
            skipped.note(i, line)
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSON-lines file (see `iter_jsonl`) as a list."""
    return list(iter_jsonl(path))
