"""Exceptions -> one message and an exit code: 1 user error, 130 interrupt, 3 bug.

An OSError whose errno says the environment is at fault (read-only, permissions, disk
full, quota, a closed terminal) is the user's to fix, not a bug: one line naming the
path, exit 1 (129 for a terminal that went away, as a shell reports SIGHUP).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any, TextIO

from metarunlog.errors import MrlError

EXIT_USER = 1
EXIT_BUG = 3
EXIT_INTERRUPT = 130
EXIT_HANGUP = 129

# errno -> what the user can do about it.
ENVIRONMENT_ERRNOS = {
    errno.EACCES: "check the permissions",
    errno.EPERM: "check the permissions",
    errno.EROFS: "the file system is read-only; `mrl ls`, `status` and `table` still work there, they only read",
    errno.ENOSPC: "free some disk space and rerun",
    errno.EDQUOT: "free some space within your quota and rerun",
    errno.EFBIG: "a file size limit stops it: `ulimit -f`, or the file system's largest file",
    errno.EIO: "the terminal or device went away",
    errno.ESTALE: "the network file system lost track of it (stale file handle): rerun, or remount",
    errno.ENOTCONN: "the mount (sshfs, FUSE) is disconnected: remount it and rerun",
    errno.EMFILE: "too many open files: raise `ulimit -n`",
    errno.ENFILE: "too many open files on this machine",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.ELOOP: "a symlink points to itself",
    # a record's name taken by a folder (made by hand): not mrl's
    errno.EISDIR: "a folder stands where mrl keeps a file: move or remove it",
}


class Exit(Exception):
    """Raised by the handler's body to leave with a given code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _debug() -> bool:
    return os.environ.get("MRL_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def error_handler() -> Iterator[None]:
    had_tty = any(_isatty(fd) for fd in (0, 1, 2))
    try:
        yield
    except Exit:
        raise
    except MrlError as e:
        if _debug():
            traceback.print_exc()
        msg = str(e).strip() or type(e).__name__
        _say(f"mrl: error: {msg}")
        raise Exit(EXIT_USER) from None
    except KeyboardInterrupt:
        if _debug():
            traceback.print_exc()
        _say("mrl: interrupted")
        raise Exit(EXIT_INTERRUPT) from None
    except BrokenPipeError:
        # `mrl ls | head`: the reader left; not an error worth a traceback.
        drop_stdout()
        raise Exit(0) from None
    except OSError as e:
        # mrl's own output failing is the stream's fault, whatever the errno (EBADF: a
        # library or hook closed descriptor 1 under mrl)
        if e.errno not in ENVIRONMENT_ERRNOS and e.filename != STDOUT:
            _bug()
        if _debug():
            traceback.print_exc()
        _say(f"mrl: error: {environment_message(e)}")
        raise Exit(EXIT_HANGUP if e.errno == errno.EIO and had_tty and _tty_gone() else EXIT_USER) from None
    except Exception as e:
        if _interrupted_inside(e):
            _say("mrl: interrupted")
            raise Exit(EXIT_INTERRUPT) from None
        _bug()


def _interrupted_inside(e: BaseException) -> bool:
    """A Ctrl-C that Python wrapped in another exception (a class body being set up while mrl
    imports a command: `Error calling __set_name__ ...` is a RuntimeError caused by it)."""
    seen: set[int] = set()
    cause: BaseException | None = e.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__
    return False


@contextlib.contextmanager
def killed_like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP (a kill, a closed terminal) end a command through the same cleanup
    as Ctrl-C (KeyboardInterrupt: temp files, half-made folders and locks are undone as
    they are then), not half-way; afterwards the process ends by that signal, as it would
    have. Signals the caller ignores (nohup) or handles stay as they are; `mrl run`'s own
    handlers take over while it runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        caught.append(signum)
        raise KeyboardInterrupt

    def unraisable(info: Any) -> None:
        # A signal whose KeyboardInterrupt was raised inside a weakref callback or __del__
        # (importlib's module-lock callback, while a module is imported) is one Python
        # only prints ("Exception ignored in ...") and the command went on as if never
        # stopped: deliver it again, from another thread, for the main thread to take in
        # plain code. Any other unraisable exception is printed as Python would.
        if not issubclass(info.exc_type, KeyboardInterrupt):
            previous_hook(info)
            return
        import _thread

        _thread.start_new_thread(os.kill, (os.getpid(), caught[-1] if caught else signal.SIGINT))

    wanted = [s for s in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is signal.SIG_DFL]
    for s in wanted:
        signal.signal(s, interrupt)
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for s in wanted:
            signal.signal(s, signal.SIG_DFL)
        if caught:
            for stream in (sys.stdout, sys.stderr):  # what was said before it ends
                with contextlib.suppress(Exception):
                    stream.flush()
            os.kill(os.getpid(), caught[0])


STDOUT = "<stdout>"  # the `filename` of an error writing mrl's own output (see stdout_named)


def drop_stdout() -> None:
    """After the reader of stdout left (`| head`): later writes, and the flush at exit, go nowhere."""
    with contextlib.suppress(Exception):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def environment_message(e: OSError) -> str:
    """`<strerror>: <path> (<what to do>)` for an OSError the environment caused."""
    # (a descriptor is no path: open(fd) of a folder's raises IsADirectoryError naming 3)
    paths = [p for p in (e.filename, e.filename2) if isinstance(p, (str, bytes, os.PathLike))]
    where = " -> ".join(os.fsdecode(p) for p in paths)
    text = e.strerror or str(e)
    hint = ENVIRONMENT_ERRNOS.get(e.errno or 0, "")
    if e.filename == STDOUT:  # the work may be done: rerunning `mrl new` would make another experiment
        hint = "only the output is lost; `mrl ls` and `mrl status` show what the command did"
    return f"{text.lower()}{': ' + where if where else ''}{' (' + hint + ')' if hint else ''}"


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _tty_gone() -> bool:
    """Whether the controlling terminal is gone (a closed terminal window: SIGHUP + EIO)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return True
    os.close(fd)
    return False


def _bug() -> None:
    traceback.print_exc()
    _say("mrl: internal error (a bug in mrl): please report it with the traceback above")
    raise Exit(EXIT_BUG) from None


def _say(line: str) -> None:
    # stderr may be the terminal that just went away: losing the message is all we can do.
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr)


class _Wrapped(io.TextIOBase):
    """A text stream passing everything but what a subclass changes to `stream`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._stream.errors

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Guarded(_Wrapped):
    """A stream whose write errors (a closed pipe: `mrl run | head -1`; a terminal that
    went away: EIO; a full disk under a redirect) never stop the work: for stdout the first
    one is said once on stderr (`...; <goes_on>`); from then on the output goes to /dev/null.
    main guards stderr so for every command: a lost warning must not end the work, or change
    its exit code, or lose what stdout still had to say."""

    def __init__(self, stream: TextIO, name: str, goes_on: str = "the run goes on") -> None:
        super().__init__(stream)
        self._name = name
        self._goes_on = goes_on
        self.lost: OSError | None = None

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                self._stream.write(text)
            except OSError as e:
                self._lose(e)
        return len(text)

    def flush(self) -> None:
        if self.lost is None:
            try:
                self._stream.flush()
            except OSError as e:
                self._lose(e)

    def isatty(self) -> bool:
        return self.lost is None and self._stream.isatty()

    def _lose(self, e: OSError) -> None:
        self.lost = e
        with contextlib.suppress(OSError, ValueError):  # later flushes (at exit too) go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        if self._name == "stdout":
            with contextlib.suppress(OSError, ValueError):
                # the work goes on: no "only the output is lost" hint on top (see environment_message)
                said = e.strerror.lower() if e.filename == STDOUT and e.strerror else environment_message(e)
                sys.stderr.write(f"mrl: warning: lost the output ({said}); {self._goes_on}\n")
                sys.stderr.flush()


@contextlib.contextmanager
def stderr_guarded() -> Iterator[None]:
    """sys.stderr as a `Guarded` stream while the command runs (see Guarded)."""
    saved = sys.stderr
    sys.stderr = Guarded(saved, "stderr")  # type: ignore[assignment]
    try:
        yield
    finally:
        if isinstance(sys.stderr, Guarded):
            sys.stderr.flush()
            sys.stderr = saved


class _NamedStdout(_Wrapped):
    """sys.stdout, whose write errors name it (`no space left on device: <stdout>`), so that
    `mrl new > /dev/full` does not read as if the disk mrl wrote the experiment to were full."""

    def write(self, text: str) -> int:
        try:  # a plain try, no context manager: `mrl ls` writes a line at a time
            return self._stream.write(text)
        except OSError as e:
            raise _named(e) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as e:
            raise _named(e) from None


def _named(e: OSError) -> OSError:
    # A BrokenPipeError (`| head`: the reader left) is named too, so that code between the
    # write and the handler (a hook's, a user function's) can tell mrl's own output from its own.
    if e.filename is None:
        e.filename = STDOUT
    return e


@contextlib.contextmanager
def stdout_named() -> Iterator[None]:
    """While the command runs, an error writing sys.stdout names it (see _NamedStdout)."""
    saved = sys.stdout
    sys.stdout = _NamedStdout(saved)  # type: ignore[assignment]
    try:
        yield
    finally:
        if isinstance(sys.stdout, _NamedStdout):
            sys.stdout = saved
