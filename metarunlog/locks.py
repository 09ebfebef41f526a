"""The run lock: `SUBDIR/.mrl.lock`, flock-ed by whoever executes a sub-experiment.

Held (LOCK_EX|LOCK_NB) by the runner for the whole execution, from before its first step
until its final record is in place, so two runners never run one sub-experiment. Its
steps never inherit it (what a step leaves behind must not keep it): a runner killed with
-9 frees it at once, and its orphaned step is recognised by its record (`execute`). That
a live runner holds it (`procs.holds_file`) tells its own folder from a copy of it
(`states.observed_state`). Anyone may probe it without taking it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from metarunlog.errors import MrlError

RUN_LOCK = ".mrl.lock"


class Locked(MrlError):
    """Another process executes this sub-experiment: its `.mrl.lock` is held."""


@contextlib.contextmanager
def run_lock(folder: Path, dir_fd: int | None = None) -> Iterator[int]:
    """Hold `folder/.mrl.lock` or raise Locked; yields the lock's file descriptor. With
    `dir_fd` (a descriptor of `folder`), the lock is the one in that very folder."""
    where = RUN_LOCK if dir_fd is not None else folder / RUN_LOCK
    try:
        # O_NOFOLLOW: a symlink planted as .mrl.lock (dangling: O_CREAT would make its
        # target) is never followed out of the sub-experiment
        fd = os.open(where, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666, dir_fd=dir_fd)
    except OSError as e:  # named in full (read-only, no permission), not as the relative name
        if e.errno == errno.ELOOP:
            raise MrlError(f"{folder / RUN_LOCK} is a symlink, not mrl's lock file: remove it") from None
        raise type(e)(e.errno, e.strerror, str(folder / RUN_LOCK)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Locked(f"sub-experiment {folder} is being run by another process (its {RUN_LOCK} is held)") from None
        yield fd
    finally:
        os.close(fd)


def is_running(folder: Path) -> bool:
    """True while some process holds `folder/.mrl.lock`; the probe takes nothing."""
    return is_flocked(folder / RUN_LOCK)


def is_flocked(path: Path) -> bool:
    """True while some process holds a flock on `path` (no file: False)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # no lock file: never run (not readable, a symlink: nothing we could take)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops our probe lock


@contextlib.contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing), waiting for other holders.

    For short critical sections between concurrent mrl processes (moving `last`)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
