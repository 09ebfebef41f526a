"""`metrics.json` (a summary: one JSON object of final values) and `metrics.jsonl` (one JSON
object per line, one line per logged step), plus any `.json` / `.jsonl` a source glob finds.

`metrics.jsonl` is read in chunks of about 1 MB, each parsed with one `json.loads` (about
twice as fast as one call per line) so memory stays bounded however long the file is. A
chunk that is not clean JSON lines (a half-written last line while the run goes on, a blank
line, bad UTF-8) is parsed line by line and its bad lines skipped.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metarunlog.errors import CorruptRecord
from metarunlog.metrics.base import Reader
from metarunlog.metrics.registry import register

SUMMARY = "metrics.json"
LINES = "metrics.jsonl"
CHUNK_BYTES = 1 << 20


@register
class JsonReader(Reader):
    name = "json"
    globs = (SUMMARY, LINES)

    def accepts(self, relpath: str) -> bool:
        return relpath.endswith((".json", ".jsonl"))

    def summary(self, files: list[Path]) -> dict[str, Any] | None:
        found = [read_summary(p) for p in files if p.suffix == ".json"]
        if not found:
            return None
        out: dict[str, Any] = {}
        for d in found:
            out.update(d)
        return out

    def rows(self, files: list[Path]) -> Iterator[dict[str, Any]]:
        return itertools.chain.from_iterable(iter_jsonl(p) for p in files if p.suffix == ".jsonl")


def read_summary(path: Path) -> dict[str, Any]:
    """A summary file as a dict; CorruptRecord naming it when it is not a JSON object."""
    try:
        data = json.loads(path.read_bytes())  # bytes: not UTF-8 is a ValueError like bad JSON
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as e:  # a folder of that name, unreadable
        raise CorruptRecord(f"cannot read {path}: {e.strerror or e}; fix or remove it") from e
    except ValueError as e:
        raise CorruptRecord(f"corrupt record {path}: {e}; fix or remove the file") from e
    if not isinstance(data, dict):
        raise CorruptRecord(f'{path} must hold a JSON object {{"name": value, ...}}')
    return data


def iter_jsonl(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one a line, streamed; other lines are skipped."""
    return itertools.chain.from_iterable(_chunks(path, chunk_bytes))  # rows handed out in C


def _chunks(path: Path, chunk_bytes: int) -> Iterator[list[dict[str, Any]]]:
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed by the with below; a missing file is no rows)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return
    with f:
        while lines := f.readlines(chunk_bytes):
            yield _parse_chunk(lines)


def _parse_chunk(lines: list[bytes]) -> list[dict[str, Any]]:
    try:
        items = json.loads(b"[" + b",".join(lines) + b"]")
        if len(items) == len(lines) and all(type(d) is dict for d in items):
            return items  # type: ignore[no-any-return]
    except ValueError:
        pass
    out = []
    for line in lines:
        if not line.strip():
            continue
        try:
            d = json.loads(line.decode("utf-8-sig", errors="replace"))  # -sig: a BOM before the first line
        except ValueError:
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSON-lines file (see `iter_jsonl`) as a list."""
    return list(iter_jsonl(path))
