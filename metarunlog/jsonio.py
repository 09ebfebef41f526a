"""JSON records on disk: atomic writes (temp file + rename) and reads that name the path."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any, NoReturn

from metarunlog.errors import CorruptRecord


def now() -> str:
    """The current local time as every record writes it: ISO 8601 with offset, seconds."""
    import datetime

    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def write_json(path: str | os.PathLike[str], data: Any, *, durable: bool = True) -> None:
    """Write `data` as JSON to `path` atomically: readers see the old or the new file, never half."""
    write_text(path, dumps(data), durable=durable)


def dumps(data: Any) -> str:
    """The text every record is written as (indented, one trailing newline)."""
    return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


def write_text(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    """Write `text` to `path` atomically (same-directory temp file, fsync, rename).

    `durable=False` skips the fsync: still atomic for readers, but a power cut may lose
    it (for transient records such as a run's `running` state).
    """
    pending = prepare_text(path, text)
    if not durable:
        pending.durable = False
    pending.commit()


@dataclass
class Pending:
    """A write of `path` made up to its temp file: `commit()` fsyncs it (when `durable`),
    renames it over `path` and closes `keep` (descriptors to hold until then: a lock).

    Lets a caller take the fsync off a busy thread while the rename still comes only after
    the data is on disk, so a crash leaves the old or the new file, never a torn one."""

    path: str
    tmp: str
    fd: int
    durable: bool = True
    keep: list[int] = field(default_factory=list)

    def commit(self) -> None:
        try:
            if self.durable:
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.abort()
            raise_named(e, self.path)
        except BaseException:
            self.abort()
            raise
        finally:
            self._release()

    def abort(self) -> None:
        """Leave `path` as it was (the temp file removed)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
        self._release()

    def _release(self) -> None:
        while self.keep:
            with contextlib.suppress(OSError):
                os.close(self.keep.pop())


_RANDOM = os.urandom(4).hex()  # with the pid: a temp name no other process (or host) uses
_seq = itertools.count()


def prepare_text(path: str | os.PathLike[str], text: str) -> Pending:
    """Write `text` to a new temp file next to `path` (see Pending; nothing is visible yet)."""
    path = os.fspath(path)
    head, name = os.path.split(path)
    while True:
        # os.open, not tempfile.mkstemp: no Python file object (fstat, ioctl, lseek per
        # file) and a mode from the umask, as any new file gets; O_EXCL keeps it our own.
        tmp = os.path.join(head, f".{name}.{os.getpid()}.{_RANDOM}.{next(_seq)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            break
        except FileExistsError:  # left by an earlier process with our pid: the next name
            continue
    pending = Pending(path, tmp, fd)
    try:
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    except OSError as e:
        pending.abort()
        raise_named(e, path)
    except BaseException:
        pending.abort()
        raise
    return pending


def raise_named(e: OSError, path: str) -> NoReturn:
    """Raise `e`, naming `path` when it names no file (write(2) and fsync(2) fail with an
    errno alone: "no space left on device" must still say where)."""
    if e.filename is not None:
        raise e
    raise OSError(e.errno, e.strerror, path) from e


def prepare_json(path: str | os.PathLike[str], data: Any) -> Pending:
    """`write_json` up to its temp file: `commit()` the result to make it durable and visible."""
    return prepare_text(path, dumps(data))


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
            f"corrupt record {path}: line {e.lineno} column {e.colno}: {e.msg}; fix or remove the file"
        ) from e


def read_json_or(path: str | os.PathLike[str], default: Any) -> Any:
    """Like read_json, but a missing file gives `default`."""
    try:
        return read_json(path)
    except FileNotFoundError:
        return default


def sync_filesystem(path: str | os.PathLike[str]) -> None:
    """Flush everything written to the filesystem holding `path` (after many non-durable
    writes: one call instead of an fsync each). syncfs(2) where libc has it, else sync(2)."""
    import ctypes

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs  # this process's libc
    except (OSError, AttributeError):
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)
