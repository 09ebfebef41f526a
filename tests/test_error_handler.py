"""metarunlog/error_handler.py: every exception becomes one message and an
exit code: 1 for what the user can fix, 130 for an interrupt, 3 with a traceback for a bug.
The error classes themselves are tested in tests/test_errors.py."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metarunlog import errors
from metarunlog.error_handler import (
    ENVIRONMENT_ERRNOS,
    EXIT_BUG,
    EXIT_INTERRUPT,
    EXIT_USER,
    Exit,
    environment_message,
    error_handler,
)
from tests.helpers.repo import REPO_ROOT, run_mrl


def exit_code(exc: BaseException) -> int:
    with pytest.raises(Exit) as e, error_handler():
        raise exc
    return e.value.code


def run_handled(body: str) -> subprocess.CompletedProcess[str]:
    """`body` inside error_handler() in a real Python process; its exit code is the Exit's."""
    script = (
        "import os, signal, sys\n"
        "from metarunlog.error_handler import Exit, error_handler\n"
        "from metarunlog.errors import MrlError\n"
        "try:\n"
        "    with error_handler():\n"
        + "".join(f"        {line}\n" for line in body.splitlines())
        + "except Exit as e:\n"
        "    sys.exit(e.code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("MRL_DEBUG", None)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)


def test_a_user_error_is_one_line_with_its_fix_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(errors.ConfigError("  no .mrl.cfg here: run `mrl init` first\n")) == EXIT_USER
    assert capsys.readouterr().err == "mrl: error: no .mrl.cfg here: run `mrl init` first\n"


def test_a_user_error_without_a_message_names_its_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(errors.DirtyTree()) == EXIT_USER
    assert capsys.readouterr().err == "mrl: error: DirtyTree\n"


def test_mrl_debug_shows_the_traceback_of_a_user_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MRL_DEBUG", "1")
    assert exit_code(errors.BatchError("bad MRL line")) == EXIT_USER
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("mrl: error: bad MRL line\n")


def test_mrl_debug_0_keeps_tracebacks_hidden(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("MRL_DEBUG", "0")
    exit_code(errors.MrlError("x"))
    assert "Traceback" not in capsys.readouterr().err


def test_a_bug_prints_its_traceback_and_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(ZeroDivisionError("division by zero")) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err
    assert err.rstrip().endswith("please report it with the traceback above")


def test_an_exit_raised_inside_passes_through_unchanged() -> None:
    assert exit_code(Exit(42)) == 42


@pytest.mark.parametrize("code", sorted(ENVIRONMENT_ERRNOS))
def test_an_environment_fault_is_one_line_naming_the_path_and_what_to_do(
    code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    exc = OSError(code, os.strerror(code), "/data/exp/0003/.mrl.status")
    assert exit_code(exc) in (EXIT_USER, 129)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"mrl: error: {os.strerror(code).lower()}: /data/exp/0003/.mrl.status (")
    assert ENVIRONMENT_ERRNOS[code] in err


@pytest.mark.parametrize("code", [errno.ESTALE, errno.ENOTCONN, errno.EFBIG], ids=["ESTALE", "ENOTCONN", "EFBIG"])
def test_a_shared_file_system_or_file_size_fault_is_the_environment_not_a_bug(
    code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # An NFS server that lost a file (stale file handle), an sshfs/FUSE mount that went away
    # (transport endpoint is not connected): a cluster's filesystem cannot be owned by a test,
    # so the errno is raised here. Before, both were internal-error tracebacks.
    assert exit_code(OSError(code, os.strerror(code), "/home/u/proj/output/0003/.mrl")) == EXIT_USER
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "/home/u/proj/output/0003/.mrl" in err


def test_an_oserror_the_environment_did_not_cause_is_a_bug(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(FileNotFoundError(errno.ENOENT, "No such file or directory", "x")) == EXIT_BUG
    assert "Traceback" in capsys.readouterr().err


def test_the_message_of_a_rename_names_both_paths() -> None:
    exc = OSError(errno.EACCES, "Permission denied", "/a/tmp", None, "/a/rec")
    assert environment_message(exc) == "permission denied: /a/tmp -> /a/rec (check the permissions)"


def test_the_message_of_a_fault_without_a_path_is_just_what_happened() -> None:
    assert environment_message(OSError(errno.ENOSPC, "No space left on device")) == (
        "no space left on device (free some disk space and rerun)"
    )


def test_a_real_full_device_is_a_one_line_error_exit_1() -> None:
    proc = run_handled("with open('/dev/full', 'w') as f:\n    f.write('x' * 100)")
    assert proc.returncode == EXIT_USER
    assert proc.stderr == "mrl: error: no space left on device (free some disk space and rerun)\n"


def test_a_real_sigint_exits_130_with_one_line() -> None:
    proc = run_handled("os.kill(os.getpid(), signal.SIGINT)\nimport time; time.sleep(30)")
    assert proc.returncode == EXIT_INTERRUPT
    assert proc.stderr == "mrl: interrupted\n"


def test_a_reader_that_leaves_the_pipe_is_exit_0_without_a_message() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    runner = (
        "import os, signal, sys\n"
        "from metarunlog.error_handler import Exit, error_handler\n"
        "try:\n"
        "    with error_handler():\n"
        "        while True: print('x' * 1000, flush=True)\n"
        "except Exit as e:\n"
        "    sys.stderr.write(f'exit {e.code}\\n'); os._exit(e.code)\n"
    )
    proc = subprocess.run(
        f'{sys.executable!s} -c "$RUNNER" | head -c 10 >/dev/null',
        shell=True,
        capture_output=True,
        text=True,
        env={**env, "RUNNER": runner},
        timeout=60,
    )
    assert proc.stderr == "exit 0\n"


def test_mrl_reports_a_missing_experiment_as_one_line_and_exit_1(project: Path) -> None:
    proc = run_mrl("info", "99", cwd=project)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("mrl: error: no experiment 99 in ")
