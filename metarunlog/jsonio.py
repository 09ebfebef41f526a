"""JSON records on disk: atomic writes (temp file + rename) and reads that name the path."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from metarunlog.errors import CorruptRecord

# Read once at import: os.umask can only be read by setting it, which races with threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def now() -> str:
    """The current local time as every record writes it: ISO 8601 with offset, seconds."""
    import datetime

    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def write_json(path: str | os.PathLike[str], data: Any, *, durable: bool = True) -> None:
    """Write `data` as JSON to `path` atomically: readers see the old or the new file, never half."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", durable=durable)


def write_text(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    """Write `text` to `path` atomically (same-directory temp file, fsync, rename).

    `durable=False` skips the fsync: still atomic for readers, but a power cut may lose
    it (for transient records such as a run's `running` state).
    """
    path = Path(path)
    import tempfile  # here, not at the top: it costs `mrl ls` several ms of start-up

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a malformed one raises CorruptRecord naming the path and line."""
    # open() on the path as given: `mrl ls` reads thousands of records, and a Path per
    # file was a third of its time.
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise CorruptRecord(f"corrupt record {path}: not UTF-8 text ({e.reason})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CorruptRecord(
            f"corrupt record {path}: line {e.lineno} column {e.colno}: {e.msg}; "
            "fix or remove the file"
        ) from e


def read_json_or(path: str | os.PathLike[str], default: Any) -> Any:
    """Like read_json, but a missing file gives `default`."""
    try:
        return read_json(path)
    except FileNotFoundError:
        return default
