"""JSON records on disk: atomic writes (temp file + rename) and reads that name the path."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, TypeVar

from metarunlog.errors import CorruptRecord, MrlError, RecordTooLarge

T = TypeVar("T")


_LAST_NOW: tuple[int, str] = (-1, "")  # the second `now` last wrote, and its text


def now() -> str:
    """The current local time as every record writes it: ISO 8601 with offset, seconds.

    Made once per second: a runner writes it three times per job, and its text depends on
    the second alone (`datetime.now()` floors the clock's ns to whole microseconds, which
    `timespec="seconds"` drops; the offset is the local zone's for that second)."""
    global _LAST_NOW
    second = time.time_ns() // 1_000_000_000
    last = _LAST_NOW  # one tuple read and one write: safe from any thread
    if last[0] == second:
        return last[1]
    import datetime

    text = datetime.datetime.fromtimestamp(second).astimezone().isoformat(timespec="seconds")
    _LAST_NOW = (second, text)
    return text


def make_folder(path: str | os.PathLike[str], hint: str) -> None:
    """`mkdir -p path`; a path that cannot be a folder (a file in the way, a special file
    system) is one MrlError naming it and ending with `hint` (what to give instead)."""
    import errno

    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        if e.errno not in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT):
            raise  # read-only, permissions, full: the error handler names these
        want = os.fspath(path)
        where = os.fsdecode(e.filename) if e.filename is not None else want
        at = f" at {where}" if where != want else ""
        raise MrlError(f"cannot make the folder {want} ({(e.strerror or str(e)).lower()}{at}); {hint}") from None


def write_json(path: str | os.PathLike[str], data: Any, *, durable: bool = True) -> None:
    """Write `data` as JSON to `path` atomically: readers see the old or the new file, never half."""
    write_text(path, _record_text(path, data), durable=durable)


def _record_text(path: str | os.PathLike[str], data: Any) -> str:
    """`dumps(data)`, refused when it is more than a read takes (RECORD_MAX). Its text is
    ASCII (json's escapes), so its length is its size in bytes."""
    text = dumps(data)
    if len(text) > RECORD_MAX:
        raise MrlError(
            f"{os.fsdecode(path)} would be {len(text):,} bytes, over the {RECORD_MAX >> 20} MiB mrl reads "
            "of a record: nothing written (make it smaller: fewer or shorter params)"
        )
    return text


def dumps(data: Any) -> str:
    """The text every record is written as (indented, one trailing newline)."""
    return _flat_dumps(data) or json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


_ESCAPE = json.encoder.encode_basestring_ascii  # how json.dumps writes a str (its C function)


def _flat_dumps(data: Any) -> str | None:
    """What `json.dumps(data, indent=2) + "\\n"` writes, for an object of scalars and lists of
    strings (every `.mrl.status`; a runner writes two per job), without json's pure-Python
    indenting encoder (half the time); None for anything else."""
    if type(data) is not dict or not data:
        return None
    lines = []
    for key, value in data.items():
        text = _scalar(value)
        if text is None:
            if type(value) is not list or not all(type(v) is str for v in value):
                return None
            text = "[\n    " + ",\n    ".join(map(_ESCAPE, value)) + "\n  ]" if value else "[]"
        if type(key) is not str:
            return None
        lines.append(f"  {_ESCAPE(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _scalar(v: Any) -> str | None:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    kind = type(v)
    if kind is str:
        return _ESCAPE(v)
    if kind is int:
        return int.__repr__(v)
    if kind is float and v - v == 0:  # finite: json writes NaN and Infinity its own way
        return float.__repr__(v)
    return None


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
        fd = -1
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            pending = Pending(path, tmp, fd)
            break
        except FileExistsError:  # left by an earlier process with our pid: the next name
            continue
        except OSError as e:  # read-only, no permission: say the file meant, not our temp name
            raise OSError(e.errno, e.strerror, path) from e
        except BaseException:
            # A Ctrl-C (or SIGTERM) that came while the file was made is raised as os.open
            # returns: the file exists, and with O_EXCL under our unique name it is ours.
            with contextlib.suppress(OSError):
                if fd >= 0:
                    os.close(fd)
                os.unlink(tmp)
            raise
    try:
        # surrogateescape: a path that is not UTF-8 (a project folder named in latin-1) is
        # written as the bytes the file system holds, as os.fsencode gives them.
        write_all(pending.fd, text.encode("utf-8", "surrogateescape"))
    except OSError as e:
        pending.abort()
        raise_named(e, path)
    except BaseException:
        pending.abort()
        raise
    return pending


_SPECIAL = {stat.S_IFIFO: "named pipe (FIFO)", stat.S_IFSOCK: "socket", stat.S_IFCHR: "device", stat.S_IFBLK: "device"}


def special_kind(path: str | os.PathLike[str]) -> str | None:
    """What `path` is when it is neither a regular file nor a folder ("named pipe (FIFO)",
    "socket", "device"; symlinks followed), else None: opening a FIFO to read it blocks
    until some writer comes, so mrl names it instead of reading or copying it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreadable: the read that follows says so
    return _SPECIAL.get(stat.S_IFMT(mode))


def raise_named(e: OSError, path: str) -> NoReturn:
    """Raise `e`, naming `path` when it names no file (write(2) and fsync(2) fail with an
    errno alone: "no space left on device" must still say where)."""
    if e.filename is not None:
        raise e
    raise OSError(e.errno, e.strerror, path) from e


@contextlib.contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """An OSError inside names `path` when it names no file (see raise_named): for a plain
    `Path.write_text`, whose "no space left on device" comes from write or close alone."""
    try:
        yield
    except OSError as e:
        raise_named(e, os.fspath(path))


def prepare_json(path: str | os.PathLike[str], data: Any) -> Pending:
    """`write_json` up to its temp file: `commit()` the result to make it durable and visible."""
    return prepare_text(path, _record_text(path, data))


# The most bytes of a record (or another JSON file of mrl's) read: what mrl writes is a few
# KiB (a batch's record with a long MRL:params list, a few MiB). Anything bigger is not a
# record, and parsing it whole would take ~10x its size in memory (a 300 MB `.mrl` put
# `mrl ls` at 3 GB): it is named in one line instead, and a write is refused as well, so
# that mrl never writes what it would not read back.
RECORD_MAX = 16 << 20


def json_files(folder: str | os.PathLike[str]) -> Iterator[tuple[str, Any]]:
    """(name, content) of each `*.json` file of `folder` that reads, by name (dot-names,
    and one that cannot be read, skipped: it proves nothing); none when there is no folder."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            yield name, read_json(os.path.join(folder, name))
        except (OSError, MrlError):
            continue


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a malformed one raises CorruptRecord naming the path and line, as
    does one over RECORD_MAX bytes (unread)."""
    # open() on the path as given: `mrl ls` reads thousands of records, and a Path per
    # file was a third of its time.
    return parse_json(read_bytes(path, limit=RECORD_MAX), path)


def too_large(path: str | os.PathLike[str], size: int, limit: int = RECORD_MAX) -> RecordTooLarge:
    """The one line for a record of `size` bytes, over `limit`."""
    return RecordTooLarge(
        f"oversized record {os.fsdecode(path)}: {size:,} bytes, over the {limit >> 20} MiB mrl reads of a record "
        "(not a file mrl wrote); move or remove it",
        size,
    )


def parse_json(data: bytes, path: str | os.PathLike[str]) -> Any:
    """The JSON in `data`, read from `path` (named when it is not JSON, as read_json does)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptRecord(f"corrupt record {path}: not UTF-8 text ({e.reason})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CorruptRecord(
            f"corrupt record {path}: line {e.lineno} column {e.colno}: {e.msg}; fix or remove the file"
        ) from e
    except RecursionError:  # the parser's depth limit (~1,000 levels of [ or {): garbage, not a record
        raise CorruptRecord(f"corrupt record {path}: nested too deep to read; fix or remove the file") from None


def write_all(fd: int, data: bytes, path: str | os.PathLike[str] | None = None) -> None:
    """`data` to the descriptor `fd`, whole (os.write may take part of it). `path` (the
    file `fd` is) goes into an OSError, which names none for a descriptor (a full disk
    said "no space left on device" without saying where)."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError as e:
        if path is not None and e.filename is None:
            e.filename = os.fspath(path)
        raise


def read_bytes(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of a (small) file: os.open and os.read, no file object (a buffered
    `open()` costs an fstat, an ioctl and two lseeks more per file, and runners read
    several small files per job). Over `limit` bytes: RecordTooLarge (`too_large`), having
    read at most `limit` + 64 KiB of it (a file whose size says less, as in /proc, or one
    growing while read, is stopped there too). A FIFO, socket or device: CorruptRecord,
    unread (O_NONBLOCK: opening a FIFO does not wait for a writer); a folder: EISDIR."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if (kind := _SPECIAL.get(stat.S_IFMT(st.st_mode))) is not None:
            raise not_a_file(path, kind)
        if limit is not None and st.st_size > limit:
            raise too_large(path, st.st_size, limit)
        chunks, total = [], 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:
                raise too_large(path, total, limit)
        return b"".join(chunks)
    except OSError as e:  # read(2) names no file (a folder: EISDIR)
        raise_named(e, os.fspath(path))
    finally:
        os.close(fd)


def not_a_file(path: str | os.PathLike[str], kind: str) -> CorruptRecord:
    """The one line for a record that is a FIFO, a socket or a device (symlinks followed)."""
    return CorruptRecord(f"{os.fsdecode(path)} is not a plain file but a {kind} (not one mrl wrote): move or remove it")


def read_json_or(path: str | os.PathLike[str], default: Any) -> Any:
    """Like read_json, but a missing file gives `default`."""
    try:
        return read_json(path)
    except FileNotFoundError:
        return default


def sync_filesystem(path: str | os.PathLike[str]) -> None:
    """Flush everything written to the filesystem holding `path` (after many non-durable
    writes: one call instead of an fsync each). syncfs(2) where libc has it, else sync(2)."""
    try:
        syncfs(path)
    except OSError:
        os.sync()


def syncfs(path: str | os.PathLike[str]) -> None:
    """syncfs(2) on the filesystem holding `path` (sync(2) where libc has none); raises
    OSError when it reports a failed writeback (Linux 5.8+)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        call = _libc_syncfs()
        if call is None:
            os.sync()
        elif call(fd) != 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), os.fspath(path))
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def _libc_syncfs() -> Any:
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).syncfs  # this process's libc
    except (OSError, AttributeError):
        return None


COMMIT_WINDOW_S = 0.5  # how long a record renamed into place may wait to be made durable


class GroupCommit(Generic[T]):
    """Makes records durable in batches: one syncfs(2) of their filesystem for every record
    renamed into place within `window` seconds, instead of an fsync each.

    `add(path, item)` after `path` was renamed into place (written without an fsync); once
    it is on disk, `on_durable(item, None)` is called (from the committer thread, or from
    the thread calling `flush`); `on_durable(item, error)` when it could not be made
    durable. A record added is durable at most `window` seconds later, and always once
    `flush()` or `close()` returns. A crash before that may leave the record older (a
    `running` one) or unreadable, never one that claims what did not happen: whatever
    is on disk was true when it was written.
    """

    def __init__(
        self,
        where: str | os.PathLike[str],
        on_durable: Callable[[T, OSError | None], None],
        window: float = COMMIT_WINDOW_S,
    ) -> None:
        self.where = os.fspath(where)
        self.on_durable = on_durable
        self.window = window
        self._cond = threading.Condition()
        self._items: list[tuple[str, T]] = []
        self._since = 0.0  # when the oldest item waiting was added
        self._closed = False
        self._syncing = threading.Lock()  # one sync at a time: a flush returns after earlier ones
        self._thread: threading.Thread | None = None

    def add(self, path: str | os.PathLike[str], item: T) -> None:
        with self._cond:
            self._items.append((os.fspath(path), item))
            if len(self._items) > 1:  # the committer waits for its window already: no wake-up
                return
            self._since = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mrl-commit", daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self) -> None:
        """Make every record added so far durable, here and now."""
        with self._syncing:
            self._sync(self._take())

    def close(self) -> None:
        """Flush, and stop the committer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _take(self) -> list[tuple[str, T]]:
        with self._cond:
            batch, self._items = self._items, []
            return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                while not self._closed and (left := self._since + self.window - time.monotonic()) > 0:
                    self._cond.wait(left)
            self.flush()

    def _sync(self, batch: list[tuple[str, T]]) -> None:
        if not batch:
            return
        try:
            syncfs(self.where)
        except OSError:  # someone's writeback failed: find out whether ours did
            for path, item in batch:
                self.on_durable(item, _fsync_path(path))
            return
        for _path, item in batch:
            self.on_durable(item, None)


def _fsync_path(path: str) -> OSError | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        return e
    return None
