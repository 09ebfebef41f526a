"""Process helpers every backend shares: is a pid alive, signal a process group, reap one.

Only pids that `valid_pid` accepts reach `os.kill`/`os.killpg`: 0 and negative
numbers would signal our own process group or every process we may signal, and a
record on disk may hold anything.
"""

from __future__ import annotations

import contextlib
import os
import signal

# Linux pid_max is at most 2**22; anything outside (0, 2**31) is not a process of ours
# (0 and negatives would signal whole process groups, huge ones overflow os.kill).
_PID_MAX = 2**31 - 1


def valid_pid(v: object) -> int | None:
    """`v` when it can be a process id (a positive int below 2**31), else None."""
    return v if type(v) is int and 0 < v <= _PID_MAX else None


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie (unknowable: True)."""
    if valid_pid(pid) is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def killpg(pgid: int, sig: int) -> None:
    """Send `sig` to process group `pgid`; one already gone (or not ours to signal) is fine."""
    if valid_pid(pgid) is None or pgid == 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def reap_group(pgid: int) -> None:
    """A step's leftover background processes go with it (they hold the run lock otherwise)."""
    killpg(pgid, signal.SIGTERM)
