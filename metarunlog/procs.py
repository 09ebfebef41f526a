"""Process helpers every backend shares: is a pid alive, signal a process group, reap one.

Only pids that `valid_pid` accepts reach `os.kill`/`os.killpg`: 0 and negative
numbers would signal our own process group or every process we may signal, and a
record on disk may hold anything.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass

# Linux pid_max is at most 2**22; anything outside (0, 2**31) is not a process of ours
# (0 and negatives would signal whole process groups, huge ones overflow os.kill).
_PID_MAX = 2**31 - 1

# This machine's name, as records write it (`host`) and compare it to tell a process of ours
# from one on another machine sharing the folder: what gethostname(2) returns, without
# importing socket (~3 ms) into every command.
HOST = os.uname().nodename


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


def start_id(pid: int) -> str | None:
    """Who `pid` is: "<boot id>:<start time in clock ticks>" (field 22 of /proc/PID/stat),
    unique to one process across pid reuse and reboots; None when unknowable."""
    if valid_pid(pid) is None:
        return None
    try:
        fields = _read_proc(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
        return f"{_boot_id()}:{int(fields[19])}"
    except (OSError, IndexError, ValueError):
        return None


def _read_proc(path: str) -> bytes:
    # os.read, not open(): read once per step started, and a buffered file costs 5 more syscalls
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def boottime_ns() -> int | None:
    """CLOCK_BOOTTIME in ns (what a process's start time in /proc counts from); None off Linux."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return None if clock is None else time.clock_gettime_ns(clock)


_TICK_NS = 10**9 // os.sysconf("SC_CLK_TCK") if 10**9 % os.sysconf("SC_CLK_TCK") == 0 else 0
_CHECKED: dict[str, bool] = {}  # "ok": a derived start id matched /proc once in this process


def spawned_start_id(pid: int, before: int | None, after: int | None) -> str | None:
    """`start_id(pid)` of a child this process created between `before` and `after`
    (`boottime_ns()` just before and after the spawn), without reading /proc when it can:
    the kernel stamps a new process with CLOCK_BOOTTIME, and /proc/PID/stat gives it in
    clock ticks, so when both stamps fall in one tick that tick is the child's. (Reading
    /proc/PID/stat right after a spawn waits until the child's exec is done: ~0.3 ms that
    a runner driving many slots from one thread would spend idle, per step.) Checked
    against /proc once per process; where they ever differ, /proc is always read."""
    if not _TICK_NS or before is None or after is None or before // _TICK_NS != after // _TICK_NS:
        return start_id(pid)
    derived = f"{_boot_id()}:{before // _TICK_NS}"
    if "ok" not in _CHECKED:
        _CHECKED["ok"] = start_id(pid) == derived
    return derived if _CHECKED["ok"] else start_id(pid)


def age_s(start: str | None) -> float | None:
    """Seconds since the process of start id `start` (`start_id`) started, as the kernel
    stamped it; None when unknowable (another boot's id, no CLOCK_BOOTTIME)."""
    boot, _, ticks = str(start or "").rpartition(":")
    now = boottime_ns()
    if not _TICK_NS or now is None or boot != _boot_id() or not ticks.isdigit():
        return None
    return max(0.0, (now - int(ticks) * _TICK_NS) / 1e9)


@functools.lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "?"


def is_same_process(pid: int | None, recorded: str | None) -> bool:
    """True only when `pid` is alive and provably the process recorded with start id
    `recorded`: a pid <= 1, a record without a start id, or a reused pid is not ours."""
    if pid is None or valid_pid(pid) is None or pid == 1 or not recorded:
        return False
    now = start_id(pid)
    return now is not None and now == recorded and pid_alive(pid)


def is_step_of(pid: int | None, recorded: str | None, subdir: str | os.PathLike[str] | None) -> bool:
    """`pid` is provably the step of the sub-experiment in `subdir`: its start id matches the
    record and its environment's `MRL_SUBEXP_DIR` (which mrl sets for every step) does not
    name another folder; or (a record of an mrl that wrote no start id) it names this one.
    The start id alone proves the recorded process, not that it is this folder's step: a
    copy of a running experiment (`cp -a`) holds the records, pids and start ids of the
    original's live steps, whose MRL_SUBEXP_DIR names the original's folders."""
    if pid is None or valid_pid(pid) is None or pid == 1:
        return False
    if recorded:
        if not is_same_process(pid, recorded):
            return False
        return subdir is None or names_folder(pid, subdir) is not False
    return subdir is not None and pid_alive(pid) and names_folder(pid, subdir) is True


def names_folder(pid: int, subdir: str | os.PathLike[str]) -> bool | None:
    """Whether the process's MRL_SUBEXP_DIR is `subdir` (the same folder by path or inode);
    None when it has none or its environment cannot be read (a step that replaced its
    environment, another user's process)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            items = f.read().split(b"\0")
    except OSError:
        return None
    want = os.fsencode(subdir)
    for item in items:
        if item.startswith(b"MRL_SUBEXP_DIR="):
            named = item[len(b"MRL_SUBEXP_DIR=") :]
            if named == want:
                return True
            try:
                return os.path.samefile(named, want)
            except OSError:  # the folder it names is gone (moved away): not this one
                return False
    return None


@dataclass(frozen=True)
class FoundStep:
    """A live step `live_steps` found: its pid, and the `MRL_RUNNER` it was started with
    (the mrl process that started it, `execute.runner_id`; None from an older mrl)."""

    pid: int
    runner: str | None
    start: str | None  # its start id (`start_id`) when found: what proves it is still that process


def live_steps(
    subdirs: Mapping[str, int], started_after: int | None = None, runner: str | None = None
) -> dict[int, FoundStep]:
    """{id: step} of live step processes whose MRL_SUBEXP_DIR names one of `subdirs` (path ->
    id), each with its `MRL_RUNNER`: session leaders (mrl starts each step in a session of
    its own) found in /proc. For the steps a runner killed with -9 may have started without
    recording them: no record names their pids. Another user's processes (environment
    unreadable) are not found, nor (`started_after`: the dead runner's start, in clock ticks
    since boot) those that started before that runner did, which cannot be its steps (a
    shell that exported the variable). Of several session leaders naming one folder the
    first started is its step: the others are sessions it (or a look-alike) started later
    (setsid, start_new_session=True) with its environment; with `runner` (the dead runner's
    `MRL_RUNNER`), the first started of those that carry it, before any that does not (a
    look-alike started between that runner and its step must not hide the step)."""
    if not subdirs:
        return {}
    want = {os.fsencode(d): i for d, i in subdirs.items()}
    out: dict[int, FoundStep] = {}
    began: dict[int, tuple[bool, int]] = {}  # id -> (not the runner's, start ticks) of the leader kept
    for name, fields in _proc_stats() or ():
        # a zombie, or not its session's leader (mrl starts each step in a session of its own)
        if fields[0] in (b"Z", b"X") or len(fields) < 20 or fields[3] != name.encode():
            continue
        # (one tick: 10 ms; a runner forks its first step far later than that after its own start)
        if started_after is not None and fields[19].isdigit() and int(fields[19]) <= started_after:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                items = f.read().split(b"\0")
        except OSError:
            continue
        env = dict(item.partition(b"=")[::2] for item in items if item.startswith((b"MRL_SUBEXP_DIR=", b"MRL_RUNNER=")))
        found = want.get(env.get(b"MRL_SUBEXP_DIR", b""))
        ticks = int(fields[19]) if fields[19].isdigit() else 0
        named = env.get(b"MRL_RUNNER")
        named_runner = os.fsdecode(named) if named is not None else None
        rank = (runner is not None and named_runner != runner, ticks)
        if found is not None and (found not in began or rank < began[found]):
            began[found] = rank
            pid = int(name)
            out[found] = FoundStep(pid, named_runner, start_id(pid))
    return out


def command_line(pid: int, width: int = 60) -> str:
    """What process `pid` runs, as one printable line of at most `width` characters (its
    arguments joined by spaces; "?" when it cannot be read): how a message names a process
    mrl will not touch, so that the user can tell which one it is."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    from metarunlog.fmt import printable

    line = printable(" ".join(os.fsdecode(w) for w in words)) or "?"
    return line if len(line) <= width else line[: width - 3] + "..."


# (pid, start id) -> (when the scan began, the files it had open): see `holds_file`.
_OPEN_FILES: dict[tuple[int, str], tuple[float, frozenset[tuple[int, int]]]] = {}


def holds_file(pid: int, recorded: str, path: str | os.PathLike[str], opened_by: float | None = None) -> bool | None:
    """Whether the process `pid` (start id `recorded`) has the file `path` open (the same
    file by device and inode, through any of its descriptors); None when unknowable (its
    descriptors cannot be read: another user's process, no /proc; or `path` is gone).

    `opened_by`: a time (`time.time()`) by which the process had opened `path` if it holds
    it at all. A scan of its descriptors that began after it is reused, so that judging many
    records of one runner reads its descriptors once; any other miss scans them again."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    want, key = (st.st_dev, st.st_ino), (pid, recorded)
    cached = _OPEN_FILES.get(key)
    if cached is not None and (want in cached[1] or (opened_by is not None and cached[0] > opened_by)):
        return want in cached[1]
    began = time.time()
    held = _open_files(pid)
    if held is None or start_id(pid) != recorded:  # gone, or its pid reused during the scan
        return None
    if len(_OPEN_FILES) > 256:
        _OPEN_FILES.clear()
    _OPEN_FILES[key] = (began, held)
    return want in held


def _open_files(pid: int) -> frozenset[tuple[int, int]] | None:
    fds = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fds)
    except OSError:
        return None
    held = set()
    for name in names:
        try:
            st = os.stat(f"{fds}/{name}")
        except OSError:  # closed meanwhile
            continue
        held.add((st.st_dev, st.st_ino))
    return frozenset(held)


# Signals after which `killpg` sends no SIGCONT: those a stopped process acts on (or is
# meant to stay stopped by) without being continued, and "is it there" (0).
_NO_CONT = frozenset(
    {0, signal.SIGKILL, signal.SIGSTOP, signal.SIGCONT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
)


def killpg(pgid: int, sig: int) -> None:
    """Send `sig` to process group `pgid`; one already gone (or not ours to signal) is fine.

    A SIGTERM (or any signal a process handles) to a stopped group (SIGSTOP, Ctrl-Z in its
    own terminal, a debugger) waits until it is continued: it ended only by the SIGKILL
    after the grace, its SIGTERM handler (a checkpoint) never run. So SIGCONT follows, to
    the same group (the one the caller proved its own), as systemd does."""
    if valid_pid(pgid) is None or pgid == 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
        if sig not in _NO_CONT:
            os.killpg(pgid, signal.SIGCONT)


LEFTOVER_GRACE_S = 2.0  # after a step ended, how long its leftovers get between SIGTERM and SIGKILL


def group_alive(pgid: int) -> bool:
    """True while process group `pgid` has a live member (zombies waiting for a parent
    that never reaps them do not count). An empty group costs one failed kill."""
    if valid_pid(pgid) is None or pgid == 1:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    """Scan /proc for a non-zombie process of group `pgid` (only when the group is not empty)."""
    stats = _proc_stats()
    if stats is None:
        return True
    return any(len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z" for _, fields in stats)


def _proc_stats() -> Iterator[tuple[str, list[bytes]]] | None:
    """(pid, the fields of /proc/PID/stat after the command name: state, ppid, pgrp, session,
    ...) of every process; None without /proc. Processes gone meanwhile are left out."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    return _stats_of(names)


def _stats_of(names: list[str]) -> Iterator[tuple[str, list[bytes]]]:
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                yield name, f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue


def reap_group(pgid: int, grace: float = LEFTOVER_GRACE_S) -> None:
    """Stop what a step left behind in its process group once the step ended: SIGTERM,
    then SIGKILL for what is left after `grace` seconds. An empty group (the usual case)
    costs one failed kill."""
    for left in leftovers(pgid, grace):
        left.wait()


def leftovers(pgid: int, grace: float = LEFTOVER_GRACE_S) -> Generator[Leftovers, int, None]:
    """What the step left in its group: SIGTERM, then waited for (yielded, like a step, to
    whoever drives the execution: the pool's other slots go on meanwhile), SIGKILL for
    what is left after `grace` seconds (`reap_group` waits for it in place)."""
    if not group_alive(pgid):  # the usual case: one failed kill
        return
    killpg(pgid, signal.SIGTERM)
    if not group_alive(pgid):  # a default SIGTERM usually ends them at once: no wait
        return
    try:
        yield Leftovers(pgid, time.monotonic() + grace)
    finally:
        if group_alive(pgid):  # an empty group's id may be a stranger's by now
            killpg(pgid, signal.SIGKILL)


@dataclass
class Leftovers:
    """A step's process group that outlived it, sent SIGTERM: yielded by an execution as a
    step's process is, so that `wait()` (or polling `ended()`) looks like waiting for one."""

    pgid: int
    deadline: float  # time.monotonic() when what is left gets SIGKILL

    def ended(self) -> bool:
        return not group_alive(self.pgid) or time.monotonic() >= self.deadline

    def wait(self) -> int:
        while not self.ended():
            time.sleep(0.02)
        return 0
