"""spawn.spawn_step: a step started by the fast path gets what Popen gives it, for real."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from metarunlog import spawn

# What the step sees, written by its own children (cat inherits the shell's ignored signals
# and blocked mask; caught ones are reset by every exec).
PROBE = (
    "pwd -P; "
    "grep -E '^Sig(Blk|Ign)' /proc/self/status; "
    "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; "
    "readlink /proc/self/fd/0; "
    'test "$(stat -L -c %i /proc/$$/fd/1)" = "$(stat -L -c %i /proc/$$/fd/2)" && echo out=err; '
    "read -r _ _ _ _ pgrp sid _ < /proc/$$/stat; "
    'test "$pgrp" = $$ && test "$sid" = $$ && echo own-session; '
    "env | grep -E '^(MRL_|PROBE)' | sort; "
    "echo to-stderr >&2"
)


def _probe(tmp_path: Path, name: str, env: dict[str, str]) -> str:
    out = os.open(tmp_path / f"{name}.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        step = spawn.spawn_step(PROBE, tmp_path, env, stdin, out)
        assert step.wait() == 0
    finally:
        os.close(out)
        os.close(stdin)
    return (tmp_path / f"{name}.out").read_bytes().decode("utf-8", "surrogateescape")


@pytest.fixture
def hostile_parent():
    """A runner's state the step must not inherit: an inheritable descriptor, Python's own
    ignored SIGPIPE/SIGXFSZ, a Python handler for SIGTERM."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    old_pipe = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    old_xfsz = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, lambda *_: None)
    yield
    signal.signal(signal.SIGPIPE, old_pipe)
    signal.signal(signal.SIGXFSZ, old_xfsz)
    signal.signal(signal.SIGTERM, old_term)
    os.close(read_end)
    os.close(write_end)


def test_fast_path_is_taken_on_the_versions_it_was_written_for() -> None:
    if sys.implementation.name == "cpython" and sys.version_info[:2] in spawn.KNOWN_VERSIONS:
        assert spawn._FORK_EXEC is not None
    else:
        assert spawn._FORK_EXEC is None


def test_a_step_gets_what_popen_gives_it(tmp_path: Path, hostile_parent, monkeypatch) -> None:
    # PROBE2: a byte that is not UTF-8, as os.environ holds it (surrogateescape)
    env = {"PATH": os.environ["PATH"], "MRL_SUBEXP_DIR": str(tmp_path), "PROBE": "a b\tc 'd' é", "PROBE2": "\udce9"}
    fast = _probe(tmp_path, "fast", env)
    monkeypatch.setattr(spawn, "_FORK_EXEC", None)
    popen = _probe(tmp_path, "popen", env)
    assert fast == popen
    lines = fast.splitlines()
    assert lines[0] == str(tmp_path.resolve())
    ign = int(next(ln for ln in lines if ln.startswith("SigIgn:")).split()[1], 16)
    assert not ign & (1 << (signal.SIGPIPE - 1)) and not ign & (1 << (signal.SIGXFSZ - 1))
    assert lines[3].split()[:3] == ["0", "1", "2"] and len(lines[3].split()) == 4  # + ls's own
    assert lines[4] == "/dev/null" and "out=err" in lines and "own-session" in lines
    assert "PROBE=a b\tc 'd' é" in lines and "PROBE2=\udce9" in lines and "to-stderr" in lines


def test_exit_codes_and_signals_as_popen_reports_them(tmp_path: Path) -> None:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        env = dict(os.environ)
        codes = [spawn.spawn_step(s, tmp_path, env, null, null).wait() for s in ("exit 3", "kill -TERM $$")]
        assert codes == [3, -signal.SIGTERM]
        step = spawn.spawn_step("sleep 0.2; exit 5", tmp_path, dict(os.environ), null, null)
        seen: list[int] = []
        waiter = threading.Thread(target=lambda: seen.append(step.wait()))
        waiter.start()
        assert step.wait() == 5
        waiter.join()
        assert seen == [5] and step.wait() == 5  # waited for from two threads, asked again
    finally:
        os.close(null)


def test_a_missing_folder_raises_what_popen_raises(tmp_path: Path, monkeypatch) -> None:
    gone = tmp_path / "gone"
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        with pytest.raises(FileNotFoundError) as fast:
            spawn.spawn_step("true", gone, dict(os.environ), null, null)
        monkeypatch.setattr(spawn, "_FORK_EXEC", None)
        with pytest.raises(FileNotFoundError) as popen:
            spawn.spawn_step("true", gone, dict(os.environ), null, null)
    finally:
        os.close(null)
    assert str(fast.value) == str(popen.value) and fast.value.filename == gone


def test_an_illegal_environment_name_is_refused_as_popen_refuses_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="illegal environment variable name"):
        spawn.spawn_step("true", tmp_path, {"A=B": "1"}, 0, 1)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(spawn._FORK_EXEC is None, reason="the fast path is off here: Popen reaps its own")
def test_a_step_dropped_without_a_wait_does_not_stay_a_zombie(tmp_path: Path) -> None:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        step = spawn.spawn_step("exit 0", tmp_path, dict(os.environ), null, null)
        pid = step.pid
        del step
        gc.collect()
        deadline = time.monotonic() + 10
        while not _zombie(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _zombie(pid)  # ended, nobody waited for it
        spawn.spawn_step("true", tmp_path, dict(os.environ), null, null).wait()  # the next spawn reaps it
        assert not _zombie(pid) and not os.path.exists(f"/proc/{pid}")
    finally:
        os.close(null)


def test_popen_is_what_runs_where_the_fast_path_is_off(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(spawn, "_FORK_EXEC", None)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        step = spawn.spawn_step("exit 4", tmp_path, dict(os.environ), null, null)
    finally:
        os.close(null)
    assert isinstance(step, subprocess.Popen) and step.wait() == 4


def test_a_step_env_over_a_base_encoded_once_is_the_dict_it_stands_for(tmp_path: Path) -> None:
    # the local pool encodes its base environment once per run (BaseEnv) and each step's
    # variables over it (StepEnv): the step must see exactly the dict {**base, **changes}
    base = {"PATH": os.environ["PATH"], "PROBE": "base", "MRL_ATTEMPT": "old", "PROBE_GONE": "x", "PROBE2": "\udce9"}
    shared = spawn.BaseEnv(base)
    plain = dict(base)
    plain["MRL_ATTEMPT"] = "2"  # set again: keeps its place
    plain["MRL_SUBEXP_DIR"] = str(tmp_path)  # new: last
    plain["PROBE_NEW"] = "é"
    del plain["PROBE_GONE"]
    first = spawn.StepEnv(shared)
    for k in ("MRL_ATTEMPT", "MRL_SUBEXP_DIR", "PROBE_NEW"):
        first[k] = plain[k]
    del first["PROBE_GONE"]
    assert dict(first) == plain and list(first) == list(plain) and len(first) == len(plain)
    assert spawn._env_list(first) == spawn._env_list(plain)
    assert "PROBE_GONE" not in first and first.get("PROBE_GONE") is None
    assert _probe(tmp_path, "shared", first) == _probe(tmp_path, "plain", plain)
    assert spawn.StepEnv(shared)["MRL_ATTEMPT"] == "old"  # another step's changes are its own
    assert shared.env == base


def test_an_illegal_name_set_over_a_base_env_is_refused_as_popen_refuses_it(tmp_path: Path) -> None:
    env = spawn.StepEnv(spawn.BaseEnv({"PATH": os.environ["PATH"]}))
    env["A=B"] = "1"
    with pytest.raises(ValueError, match="illegal environment variable name"):
        spawn.spawn_step("true", tmp_path, env, 0, 1)
    with pytest.raises(ValueError, match="illegal environment variable name"):
        spawn.spawn_step("true", tmp_path, spawn.StepEnv(spawn.BaseEnv({"A=B": "1"})), 0, 1)
