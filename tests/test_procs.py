"""procs.py: liveness and signals, never reaching a process mrl cannot prove is its own."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metarunlog import procs
from metarunlog.procs import killpg, pid_alive, reap_group, valid_pid


@pytest.mark.parametrize("pid", [0, -1, 2**31, 10**30, True, "12", 1.5, None])
def test_a_pid_that_cannot_be_a_process_is_refused(pid: object) -> None:
    assert valid_pid(pid) is None
    assert pid_alive(pid) is False  # type: ignore[arg-type]
    killpg(pid, signal.SIGTERM)  # type: ignore[arg-type]  # 0 or -1 here would stop this test run


def test_init_s_process_group_is_never_signalled() -> None:
    killpg(1, signal.SIGCONT)  # refused before os.killpg (as root it would reach every process in it)
    assert valid_pid(1) == 1 and pid_alive(1)


def test_killpg_stops_a_whole_process_group_and_a_gone_one_is_fine() -> None:
    group = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)
    assert pid_alive(group.pid)
    reap_group(group.pid)
    assert group.wait(timeout=10) == -signal.SIGTERM
    assert not pid_alive(group.pid)
    killpg(group.pid, signal.SIGTERM)  # already gone: nothing to do, no error


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    for _ in range(200):
        if not pid_alive(child.pid):
            break
        subprocess.run(["sleep", "0.01"])
    assert not pid_alive(child.pid)  # exited, not yet reaped
    child.wait()


def test_the_start_id_of_a_child_is_known_from_the_clock_as_proc_would_say_it() -> None:
    """Read right after the spawn, /proc/PID/stat waits for the child's exec: the id is
    derived from CLOCK_BOOTTIME around the spawn instead, and must be the very same."""
    import subprocess

    from metarunlog import procs

    for _ in range(50):
        before = procs.boottime_ns()
        child = subprocess.Popen(["sleep", "5"])
        after = procs.boottime_ns()
        try:
            assert procs.spawned_start_id(child.pid, before, after) == procs.start_id(child.pid)
        finally:
            child.kill()
            child.wait()


def test_a_start_id_is_read_from_proc_when_the_clock_cannot_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from metarunlog import procs

    me = os.getpid()
    assert procs.spawned_start_id(me, 0, 10**18) == procs.start_id(me)  # the spawn straddled ticks
    assert procs.spawned_start_id(me, None, None) == procs.start_id(me)  # no CLOCK_BOOTTIME
    monkeypatch.setitem(procs._CHECKED, "ok", False)  # derived once, and /proc disagreed
    now = procs.boottime_ns()
    assert procs.spawned_start_id(me, now, now) == procs.start_id(me)


def test_a_step_is_proven_by_its_start_id_and_the_folder_its_environment_names(tmp_path) -> None:  # noqa: ANN001
    """A copy of a running experiment holds the original's pids and start ids: the start id
    proves the process, MRL_SUBEXP_DIR whether it is this folder's step."""
    import os

    from metarunlog.procs import is_step_of, start_id

    mine, copy = tmp_path / "0001" / "001", tmp_path / "0002" / "001"
    mine.mkdir(parents=True)
    copy.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "0001")
    step = subprocess.Popen(["sleep", "30"], env={**os.environ, "MRL_SUBEXP_DIR": str(mine)})
    bare = subprocess.Popen(["sleep", "30"])
    try:
        started = start_id(step.pid)
        assert is_step_of(step.pid, started, mine)
        assert is_step_of(step.pid, started, tmp_path / "link" / "001")  # the same folder by another path
        assert not is_step_of(step.pid, started, copy)  # the original's step, not the copy's
        assert not is_step_of(step.pid, "1:2", mine)  # a reused pid
        assert is_step_of(step.pid, None, mine) and not is_step_of(step.pid, None, copy)  # a record without start id
        # no MRL_SUBEXP_DIR (a step that replaced its environment): the start id is the proof;
        # without a start id, nothing proves it
        assert is_step_of(bare.pid, start_id(bare.pid), mine) and not is_step_of(bare.pid, None, mine)
        assert is_step_of(step.pid, started, None)  # no folder to check: the start id proves it
    finally:
        for p in (step, bare):
            p.kill()
            p.wait()


def test_holds_file_tells_a_file_a_process_holds_open_from_one_it_does_not(tmp_path: Path) -> None:
    held, other, later = tmp_path / "held", tmp_path / "other", tmp_path / "later"
    for p in (held, other, later):
        p.write_text("")
    opener = (
        "import os, sys, time; a = os.open(sys.argv[1], os.O_RDONLY); print(flush=True); "
        "sys.stdin.readline(); b = os.open(sys.argv[2], os.O_RDONLY); print(flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", opener, str(held), str(later)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        proc.stdout.readline()
        start = procs.start_id(proc.pid)
        assert start is not None
        assert procs.holds_file(proc.pid, start, held) is True
        assert procs.holds_file(proc.pid, start, other) is False
        assert procs.holds_file(proc.pid, start, tmp_path / "gone") is None
        assert procs.holds_file(proc.pid, "another-boot:1", held) is None  # not the recorded process
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.stdout.readline()  # it opened `later` after the scans above
        # A file opened before the last scan began is known not held without a new scan...
        assert procs.holds_file(proc.pid, start, later, opened_by=time.time() - 3600) is False
        # ...any other miss looks again.
        assert procs.holds_file(proc.pid, start, later) is True
    finally:
        proc.kill()
        proc.wait()


def test_live_steps_finds_session_leaders_naming_a_folder_and_nothing_else(tmp_path: Path) -> None:
    # what a runner killed between spawning a step and recording it leaves: a step in a
    # session of its own whose MRL_SUBEXP_DIR names its folder
    import os

    a, b, other = (str(tmp_path / n) for n in ("001", "002", "elsewhere"))
    env = {**os.environ}

    def start(subdir: str, *, session: bool, cmd: str = "sleep 30") -> subprocess.Popen[bytes]:
        return subprocess.Popen(["sh", "-c", cmd], env={**env, "MRL_SUBEXP_DIR": subdir}, start_new_session=session)

    step = start(a, session=True)
    # a child in the step's own session (not its leader) and a process of another folder
    inner = start(b, session=True, cmd="sleep 30 & sleep 30")
    stranger = start(other, session=True)
    plain = start(b, session=False)  # not a session leader: a step's child, never a step
    zombie = start(b, session=True, cmd="exit 0")
    try:
        zombie_pid = zombie.pid
        time.sleep(0.3)  # the zombie exits (not reaped yet: still in /proc as Z)
        found = {i: s.pid for i, s in procs.live_steps({a: 1, b: 2}).items()}
        assert found[1] == step.pid
        assert found.get(2) == inner.pid  # the leader; its `sleep 30 &` child is no session leader
        assert zombie_pid not in found.values() and plain.pid not in found.values()
        assert stranger.pid not in found.values()
        assert procs.live_steps({}) == {}
    finally:
        for p in (step, inner, stranger):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        plain.kill()
        plain.wait()
        zombie.wait()
