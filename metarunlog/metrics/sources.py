"""Which files of a sub-experiment folder each reader reads, and reading them all.

One `Finder` per experiment: it compiles every reader's globs (and the `metrics.sources`
globs, each given to the reader named or the one accepting its file type) once, then per
folder lists the files once (a walk only as deep as some glob needs) and matches them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metarunlog import plugins
from metarunlog.errors import MrlError
from metarunlog.metrics import registry
from metarunlog.metrics.base import CutShort, MissingExtra, Reader, Settings, not_a_name

# Never searched for metrics: a one-job experiment's folder holds the code snapshot and the trash.
SKIP_DIRS = frozenset(
    {
        "code",
        ".trash",
        ".mrl.template",
        ".mrl.slurm",
        ".mrl.attempts",
        ".mrl.owners",
        ".git",
        "__pycache__",
        "node_modules",
    }
)
MAX_DEPTH = 8  # for `**` globs


_DIGITS = re.compile(r"(\d+)")


def _is_record(relpath: str) -> bool:
    """mrl's own files and folders (`.mrl`, `.mrl.status`, `.mrl.lock`, `.mrl.note`, a
    makebatch's `.mrl.batch-tmp-*`...): never metrics, whatever a glob says (`{"glob": "*",
    "reader": ...}`, a reader's own `**/*`), so that no reader reads them and `makebatch
    -replace` never trashes an experiment's record or its own staging folder."""
    name = relpath.rpartition("/")[2]
    return name.startswith(".mrl") and (len(name) == 4 or name[4] == ".")


def natural_key(relpath: str) -> list[Any]:
    """Sort `version_2` before `version_10` (the order a resumed run wrote them in)."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(relpath)]


def glob_regex(pattern: str) -> str:
    """A regex (source) for a relative-path glob: `*`, `?`, `[...]` within a name, `**/` any dirs."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (j := pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)) > 0:
            body = pattern[i + 1 : j].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def glob_depth(pattern: str) -> int:
    """How many folder levels a glob can reach (1: names in the folder itself)."""
    return MAX_DEPTH if "**" in pattern else pattern.count("/") + 1


def _compile(globs: list[str]) -> re.Pattern[str] | None:
    if not globs:
        return None
    return re.compile("(?:" + "|".join(glob_regex(g) for g in globs) + r")\Z")


@dataclass
class Found:
    """What the readers made of one folder: merged summary, streamed rows, and read errors."""

    summary: dict[str, Any] | None
    rows: Iterator[dict[str, Any]]
    errors: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    streams: list[Iterator[dict[str, Any]]] = field(default_factory=list)  # each reader's rows (`rows` chains them)


class Finder:
    """The readers of one experiment's settings, with their globs compiled."""

    def __init__(self, settings: Settings | None = None, readers: list[Reader] | None = None) -> None:
        self.settings = settings or Settings()
        self.readers = readers if readers is not None else registry.readers(self.settings)
        self._own = [_compile(r.looks_for()) for r in self.readers]
        self._extra = [(re.compile(glob_regex(s.glob) + r"\Z"), s.reader) for s in self.settings.sources]
        globs = self.looked_for()
        self._any = _compile(globs)
        self._depth = max((glob_depth(g) for g in globs), default=0)

    def looked_for(self) -> list[str]:
        """Every glob some reader reads, own ones first (for messages and the trash)."""
        own = [g for r in self.readers for g in r.looks_for()]
        return list(dict.fromkeys(own + [s.glob for s in self.settings.sources]))

    def files(self, folder: Path) -> list[tuple[Reader, list[Path]]]:
        """Each reader with the files it reads in `folder` (sorted), readers without files left out."""
        if self._any is None:
            return []
        names = [n for n in list_files(folder, self._depth) if self._any.match(n) and not _is_record(n)]
        if not names:
            return []
        out = []
        for reader, own in zip(self.readers, self._own, strict=True):
            if self._extra:
                mine = [n for n in names if (own is not None and own.match(n)) or self._extra_for(reader, n)]
            else:
                mine = [n for n in names if own is not None and own.match(n)]
            if mine:
                out.append((reader, [folder / n for n in sorted(mine, key=natural_key)]))
        return out

    def _extra_for(self, reader: Reader, relpath: str) -> bool:
        return any(
            rx.match(relpath) and (name == reader.name if name else reader.accepts(relpath)) for rx, name in self._extra
        )

    def owned(self, folder: Path) -> list[Path]:
        """Every file of `folder` some reader reads (what `makebatch -replace` moves away)."""
        return sorted({p for _, paths in self.files(folder) for p in paths})

    def read(self, folder: Path, *, ended: bool = False, writing: bool = False, undone: str = "") -> Found:
        """The merged summary (a later reader wins per key) and the chained rows of `folder`.

        `ended`: the sub-experiment's writer ended by itself, so its files are complete (a
        last line without its line end counts; see `Reader.read_rows`). `writing`: it may be
        writing them now (running or queued; see `Reader.read_summary`). `undone`: the state
        it ended in when that is not `done` (failed, cancelled...): a summary file cut short
        (`CutShort`) is then a warning, its values left out, not an error.

        Summaries are read now; rows lazily, as the caller iterates. A reader that raises
        `MrlError` (a corrupt file) is reported in `errors` (for rows: once they are
        consumed) and the others are still read; a missing optional extra is a warning.
        """
        matched = self.files(folder)
        found = Found(None, iter(()), files=[p for _, paths in matched for p in paths])
        readable = []

        def warn(message: str) -> None:
            found.warnings.append(message)
            _warn_once(message)

        for reader, paths in matched:
            try:
                s = _summary(reader, paths, folder, writing, warn)
            except MissingExtra as e:
                found.warnings.append(str(e))
                _missing.add(str(e))
                _warn_once(str(e))
                continue
            except CutShort as e:
                if undone:
                    found.warnings.append(_cut_note(e, undone))
                    _warn_once(found.warnings[-1])
                else:
                    found.errors.append(str(e))
            except MrlError as e:
                found.errors.append(str(e))
            else:
                if s is not None:
                    found.summary = {**(found.summary or {}), **s}
            readable.append((reader, paths))

        found.streams = [_rows(reader, paths, folder, ended, warn) for reader, paths in readable]
        found.rows = _guarded(found.streams, found.errors)
        return found


def _cut_note(e: CutShort, undone: str) -> str:
    # a step stopped while it wrote (a kill, a time limit, json.dump raising on a value it
    # cannot write) leaves the file cut for good: say so, once, and show the run without it
    return (
        f"{e.path} is empty or cut short ({e.why}), so its values are left out: "
        f"its sub-experiment is {undone}, its step likely stopped while writing it"
    )


def _what(reader: Reader, folder: Path) -> str:
    return f"metrics reader {reader.name!r} reading {folder}"


def _summary(
    reader: Reader, paths: list[Path], folder: Path, writing: bool, warn: Callable[[str], None]
) -> dict[str, Any] | None:
    """`reader.read_summary(paths, ...)`; a reader from outside mrl that raises, or returns
    something other than a dict or None, is an error of that folder (MrlError), not an mrl bug."""
    with plugins.blamed(_what(reader, folder), reader), plugins.prints_to_stderr():
        if plugins.is_foreign(reader):
            s = reader.read_summary(paths, writing=writing)
        else:
            s = reader.read_summary_noting(paths, writing=writing, warn=warn)
    if s is not None and not isinstance(s, dict):
        kind = type(s).__name__
        raise plugins.PluginError(f"{_what(reader, folder)}: summary() returned a {kind}, not a dict or None")
    if s is not None and (bad := not_a_name(s)) is not None:
        raise plugins.PluginError(f"{_what(reader, folder)}: summary() returned the key {bad}, not a str")
    return s


def _rows(
    reader: Reader, paths: list[Path], folder: Path, ended: bool, warn: Callable[[str], None]
) -> Iterator[dict[str, Any]]:
    """`reader.read_rows(paths, ended=...)`; a foreign reader's rows are checked one by one
    (mrl's own are trusted, so a 200 MB log pays nothing for this, and may warn)."""
    if not plugins.is_foreign(reader):
        return reader.read_rows_noting(paths, ended=ended, warn=warn)
    return _checked_rows(reader, paths, folder, ended)


def _checked_rows(reader: Reader, paths: list[Path], folder: Path, ended: bool) -> Iterator[dict[str, Any]]:
    what = _what(reader, folder)
    with plugins.blamed(what, reader):
        with plugins.prints_to_stderr():
            rows = iter(reader.read_rows(paths, ended=ended))
        while True:
            with plugins.prints_to_stderr():  # around its own code only, never across a yield
                row = next(rows, _END)
            if row is _END:
                return
            if not isinstance(row, dict):
                raise plugins.PluginError(f"{what}: rows() yielded a {type(row).__name__}, not a dict")
            if (bad := not_a_name(row)) is not None:
                raise plugins.PluginError(f"{what}: rows() yielded a row with the key {bad}, not a str")
            yield row


_END: Any = object()


def _guarded(streams: list[Iterator[dict[str, Any]]], errors: list[str]) -> Iterator[dict[str, Any]]:
    for rows in streams:
        try:
            yield from rows
        except MrlError as e:  # keep the rows before the bad part, and the other readers'
            errors.append(str(e))


def consume(found: Found, sink: Callable[[Iterator[dict[str, Any]]], None]) -> None:
    """Feed each reader's rows to `sink` (an Accumulator's `add`), without the per-row cost of
    `found.rows`; a reader that raises MrlError midway is added to `found.errors`."""
    for rows in found.streams:
        try:
            sink(rows)
        except MrlError as e:
            found.errors.append(str(e))


_warned: set[str] = set()
_missing: set[str] = set()  # the missing-extra hints given (`missing_extra`)
log = logging.getLogger("metarunlog.metrics")  # `mrl` prints it as `mrl: warning: ...`


def missing_extra(warnings: list[str]) -> bool:
    """Whether one of `warnings` is a reader's missing-extra hint: it already says why there
    are no metrics, and "no metrics ... looked for" beside it would say no file was found."""
    return any(w in _missing for w in warnings)


def _warn_once(message: str) -> None:
    """A missing extra is said once per process, not once per sub-experiment (a skipped
    line names its file, so it is said once per file)."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def list_files(folder: Path, depth: int) -> list[str]:
    """Relative paths (with `/`) of the regular files under `folder` (or links to one), at
    most `depth` levels down: a FIFO or device named like a metrics file is none (opening a
    FIFO nobody writes would block its reader for good)."""
    if depth <= 1:
        try:
            with os.scandir(folder) as it:
                return [e.name for e in it if _is_regular(e)]
        except (FileNotFoundError, NotADirectoryError):
            return []
    out: list[str] = []
    _walk(str(folder), "", depth, out)
    return out


def _is_regular(e: os.DirEntry[str]) -> bool:
    try:
        return e.is_file()  # d_type alone for plain files; a stat for a link
    except OSError:  # gone meanwhile, or a link loop
        return False


def _walk(path: str, prefix: str, depth: int, out: list[str]) -> None:
    try:
        it = os.scandir(path)
    except OSError:
        return
    with it:
        for e in it:
            if _is_regular(e):
                out.append(prefix + e.name)
            elif depth > 1 and e.is_dir(follow_symlinks=False) and e.name not in SKIP_DIRS and not _is_record(e.name):
                _walk(e.path, prefix + e.name + "/", depth - 1, out)
