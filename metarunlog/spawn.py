"""Starting a step's process: `/bin/sh -c STEP` in its folder, in a session of its own.

`spawn_step` does what `subprocess.Popen(step, shell=True, cwd=..., env=..., stdin=...,
stdout=log, stderr=STDOUT, start_new_session=True)` does (close every other descriptor,
SIGPIPE and SIGXFSZ back to their defaults, a new session, an exec failure raised here as
the OSError Popen raises) through the very C function Popen calls,
`_posixsubprocess.fork_exec`, without Popen's Python around it: the environment encoded in
one pass, no Popen object, lock or pipe bookkeeping. That was ~0.07 ms of a short step's
~0.14 ms spawn, on the thread that starts every step of a run. The function is private,
so the fast path is taken only on the CPython versions whose signature it was written and
tested against (tests/test_spawn.py compares what a step gets with what Popen gives it);
anywhere else it is Popen.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Protocol

SHELL = "/bin/sh"
_SHELL_B = os.fsencode(SHELL)
_FS_ENCODING = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
# fork_exec(args, executable_list, close_fds, fds_to_keep, cwd, env_list, p2cread, p2cwrite,
#   c2pread, c2pwrite, errread, errwrite, errpipe_read, errpipe_write, restore_signals,
#   call_setsid, pgid_to_set, gid, extra_groups, uid, child_umask, preexec_fn, allow_vfork)
KNOWN_VERSIONS = ((3, 11), (3, 12), (3, 13))


class Started(Protocol):
    """A started step as the runners use it (a Popen is one too)."""

    pid: int

    def wait(self) -> int: ...


def _fork_exec() -> Callable[..., int] | None:
    if sys.implementation.name != "cpython" or sys.version_info[:2] not in KNOWN_VERSIONS:
        return None
    try:
        import _posixsubprocess
    except ImportError:
        return None
    return getattr(_posixsubprocess, "fork_exec", None)


_FORK_EXEC = _fork_exec()


def spawn_step(step: str, cwd: str | os.PathLike[str], env: Mapping[str, str], stdin: int, output: int) -> Started:
    """Start `/bin/sh -c step` (see the module docstring); raises OSError when it cannot."""
    fork_exec = _FORK_EXEC
    if fork_exec is None:
        return subprocess.Popen(
            step,
            shell=True,
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    args = [SHELL, "-c", step]
    sys.audit("subprocess.Popen", SHELL, args, cwd, env)
    env_list = _env_list(env)
    _reap_dropped()
    read_end, write_end = _error_pipe()
    try:
        try:
            pid = fork_exec(
                args,
                (_SHELL_B,),
                True,  # close_fds
                (write_end,),
                cwd,
                env_list,
                stdin,
                -1,
                -1,
                output,  # stdout
                -1,
                output,  # stderr: the same descriptor, as stderr=STDOUT makes it
                read_end,
                write_end,
                True,  # restore_signals
                True,  # start_new_session
                -1,  # process_group
                None,
                None,
                None,
                -1,  # gid, extra_groups, uid, umask: unchanged
                None,  # preexec_fn
                getattr(subprocess, "_USE_VFORK", True),
            )
        finally:
            os.close(write_end)
        error = _read_to_end(read_end)
    finally:
        os.close(read_end)
    if error:
        _raise_child_error(pid, error, cwd)
    return Step(pid)


class BaseEnv:
    """A run's base environment (os.environ, or a task's), encoded once for all its steps:
    each step's environment is it plus the few variables mrl sets per step (`StepEnv`), so
    a runner starting hundreds of steps does not encode (and check) every one of the
    user's variables again for each of them."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self._encoded: dict[str, bytes] | None = None

    def encoded(self) -> dict[str, bytes]:
        """Each variable's `KEY=VALUE` bytes, as `_env_list` makes them (its errors too)."""
        if self._encoded is None:
            self._encoded = dict(zip(self.env, _env_list(self.env), strict=True))
        return self._encoded


_GONE: Any = object()  # a base variable a step's environment removed


class StepEnv(MutableMapping[str, str]):
    """One step's environment: a `BaseEnv` and the variables set (or removed) over it. It
    reads, iterates and encodes as the dict `{**base, **changes}` would (a base variable
    set again keeps its place, a new one comes last), so the step sees the very
    environment a plain dict gave it; only the changes are encoded per step."""

    __slots__ = ("base", "changes")

    def __init__(self, base: BaseEnv) -> None:
        self.base = base
        self.changes: dict[str, Any] = {}

    def __getitem__(self, key: str) -> str:
        value = self.changes.get(key, _GONE) if key in self.changes else self.base.env[key]
        if value is _GONE:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: str) -> None:
        self.changes[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.changes[key] = _GONE

    def __iter__(self) -> Iterator[str]:
        for key in self.base.env:
            if self.changes.get(key) is not _GONE:
                yield key
        for key, value in self.changes.items():
            if value is not _GONE and key not in self.base.env:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def encoded(self) -> list[bytes]:
        out = dict(self.base.encoded())  # a copy in C: the base's order, its bytes
        changed = {k: v for k, v in self.changes.items() if v is not _GONE}
        out.update(zip(changed, _env_list(changed), strict=True))
        for key, value in self.changes.items():
            if value is _GONE:
                del out[key]
        return list(out.values())


def _env_list(env: Mapping[str, str]) -> list[bytes]:
    """`KEY=VALUE` items as Popen makes them (os.fsencode), in one pass for str items."""
    if isinstance(env, StepEnv):
        return env.encoded()
    enc, errors = _FS_ENCODING
    try:
        items = [k.encode(enc, errors) + b"=" + v.encode(enc, errors) for k, v in env.items()]
    except AttributeError:  # bytes or path-like items: the slow way, as Popen
        items = [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
    for k in env:
        if (b"=" if isinstance(k, bytes) else "=") in k:  # type: ignore[operator]
            raise ValueError("illegal environment variable name")
    return items


def _error_pipe() -> tuple[int, int]:
    """The pipe the child reports an exec failure on; its write end above 0-2 (a runner
    started with a closed stdin must not hand the child its error pipe as stdin)."""
    read_end, write_end = os.pipe()
    low = []
    while write_end < 3:
        low.append(write_end)
        write_end = os.dup(write_end)
    for fd in low:
        os.close(fd)
    return read_end, write_end


def _read_to_end(fd: int) -> bytes:
    data = b""
    while True:
        part = os.read(fd, 50000)
        data += part
        if not part or len(data) > 50000:
            return data


def _raise_child_error(pid: int, data: bytes, cwd: str | os.PathLike[str]) -> None:
    """The child's report that it could not exec (`Name:hex errno:message`), raised as
    Popen raises it: chdir failures name `cwd`, exec failures the shell."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    try:
        name, hex_errno, raw = data.split(b":", 2)
        message = raw.decode()
    except ValueError:
        raise subprocess.SubprocessError(f"Bad exception data from child: {data!r}") from None
    found: Any = getattr(builtins, name.decode("ascii", "replace"), None)
    kind = found if isinstance(found, type) and issubclass(found, Exception) else subprocess.SubprocessError
    if issubclass(kind, OSError) and hex_errno:
        errno_num = int(hex_errno, 16)
        before_exec = message.startswith("noexec")  # 3.13+: "noexec:chdir" when chdir failed
        text = os.strerror(errno_num) if errno_num else ("" if before_exec else message)
        if not before_exec:
            raise kind(errno_num, text, SHELL)
        if message == "noexec:chdir" or sys.version_info < (3, 13):  # before 3.13 "noexec" is chdir's
            raise kind(errno_num, text, cwd)
        raise kind(errno_num, text)
    raise kind(message)


# Steps dropped without a wait (their runner was stopped), reaped at the next spawn.
_DROPPED: list[int] = []


class Step:
    """A step started by `spawn_step`: its pid and, once waited for, its exit code (negative:
    the signal that ended it), as Popen.wait gives it. Safe to wait for from two threads."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def wait(self) -> int:
        with self._lock:
            code = self.returncode
            if code is None:
                try:
                    _, status = os.waitpid(self.pid, 0)
                except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): as Popen, 0
                    code = 0
                else:
                    code = os.waitstatus_to_exitcode(status)
                self.returncode = code
            return code

    def __del__(self, _dropped: list[int] = _DROPPED) -> None:
        if self.returncode is None:  # never waited for (its runner was stopped): reaped later
            _dropped.append(self.pid)


def _reap_dropped() -> None:
    """Reap the steps dropped without a wait (Popen does the same with its `_active`
    list): they do not stay zombies for as long as the runner lives."""
    for pid in list(_DROPPED):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _DROPPED.remove(pid)
