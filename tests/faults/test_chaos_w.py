"""Faults the third randomized harness found (docs/dev-notes/wave2/chaos-w.md): signals
while a command imports its libraries, closed terminals, low open-file limits, hooks,
records damaged by hand. Each reduced to a deterministic case with real mrl processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends.contract import make_experiment
from tests.helpers.repo import GIT_ENV, REPO_ROOT, run_mrl

ENV = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO_ROOT)}

# `mrl ARGS` in a real process that sends itself SIGNAL as Python starts importing the Nth
# module whose name starts with PREFIX (a Ctrl-C landing inside a library's own import).
SIGNALLED_AT_NTH_IMPORT = """
import os, signal, sys
prefix, n, sig = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3])
seen = [0]
class Finder:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(prefix):
            seen[0] += 1
            if seen[0] == n:
                sys.meta_path.remove(self)
                os.kill(os.getpid(), sig)
        return None
sys.meta_path.insert(0, Finder())
from metarunlog.main import main
sys.exit(main(sys.argv[4:]))
"""


def _signalled_at_import(project: Path, prefix: str, n: int, sig: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", SIGNALLED_AT_NTH_IMPORT, prefix, str(n), sig, *args]
    return subprocess.run(argv, cwd=project, env=ENV, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("n", [12, 30])
def test_ctrl_c_while_analyze_watch_imports_numpy_is_an_interrupt_not_an_internal_error(project: Path, n: int) -> None:
    # `--watch` writes a last page on ^C; before, it did so even when the ^C had landed in
    # the first report's `import numpy`: the half-imported numpy then failed
    # (`module 'numpy' has no attribute ...`): a traceback, "internal error", exit 3.
    exp = make_experiment(project, [{"x": 1}, {"x": 2}], 'echo "{\\"v\\": {{x}}}" > metrics.json')
    assert run_mrl("run", cwd=project).returncode == 0
    proc = _signalled_at_import(project, "numpy.", n, "SIGINT", "analyze", str(exp.id), "--watch", "5")
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "mrl: interrupted", proc.stderr
    assert not [p.name for p in exp.dir.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a read-only bind mount")
def test_an_experiment_made_read_only_mid_run_still_gets_its_summary_not_an_error_about_the_done_mark(
    project: Path,
) -> None:
    # 001's step makes the whole experiment folder read-only (a remount elsewhere, mid-run)
    exp_dir = project / "output" / "0001"
    once = project / "made-read-only"  # the rerun at the end must not do it again
    ro = f"touch {once} && mount --bind {exp_dir} {exp_dir} && mount -o remount,ro,bind {exp_dir}"
    exp = make_experiment(project, [{"x": i} for i in (1, 2, 3)], f"if [ ! -e {once} ]; then {ro}; fi; true")
    assert exp.dir == exp_dir
    try:
        proc = run_mrl("run", "-j", "1", cwd=project)
    finally:
        subprocess.run(["umount", "-l", str(exp_dir)], capture_output=True)
    # before: no line for any job and no summary, only `mrl: error: read-only file system:
    # .../.mrl.done`: the done mark (which was not even there) could not be removed
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and ".mrl.done" not in proc.stderr, proc.stderr
    for sub in ("001", "002", "003"):
        assert f"{sub}: mrl could not record it: read-only file system" in proc.stderr, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("mrl: finished in "), proc.stdout
    assert run_mrl("run", cwd=project).returncode == 0  # the next run recovers


@pytest.mark.parametrize("command", [["status"], ["analyze"], ["cancel"]])
def test_a_stdout_closed_under_mrl_is_only_lost_output_not_an_internal_error(project: Path, command: list[str]) -> None:
    # A before_ hook closes file descriptor 1 (as a library that "daemonizes" does): mrl's
    # own output then fails with EBADF. before: OSError traceback, "internal error", exit 3.
    from tests.helpers.repo import commit_all, set_cfg

    make_experiment(project, [{"x": 1}], "true")
    set_cfg(project, hooks={f"before_{command[0]}": {}})
    (project / "mrl_hooks.py").write_text(f"import os\ndef before_{command[0]}(mrl, args):\n    os.close(1)\n")
    commit_all(project, "hooks")
    proc = run_mrl(*command, cwd=project)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mrl: error:")]
    assert len(errors) == 1 and "bad file descriptor: <stdout>" in errors[0], proc.stderr
    assert "only the output is lost" in errors[0], errors[0]


def test_a_grid_value_spelled_as_json_writes_a_character_beyond_the_bmp_is_that_character(project: Path) -> None:
    # `json.dumps(["🐍"])` writes "\ud83d\udc0d": a surrogate pair, JSON's spelling of the one
    # character, which a grid line evaluated as Python reads as two lone surrogates.
    # before: `mrl: error: ... holds a lone surrogate ('\ud83d'), which no UTF-8 file can hold`
    import json

    assert run_mrl("new", "x", cwd=project).returncode == 0
    exp = project / "output" / "0001"
    (exp / "conf.lua").write_text('name = {{ name | tojson }}\n-- MRL:grid["name"] = ["\\ud83d\\udc0d", "plain"]\n')
    proc = run_mrl("makebatch", "1", cwd=project)
    assert proc.returncode == 0, proc.stderr
    names = [json.loads((exp / sub / ".mrl").read_text())["params"]["name"] for sub in ("001", "002")]
    assert names == ["\U0001f40d", "plain"]
    assert json.loads((exp / "001" / "conf.lua").read_text().split("=", 1)[1]) == "\U0001f40d"
    # a lone one is still refused
    (exp / "conf.lua").write_text('name = {{ name | tojson }}\n-- MRL:grid["name"] = ["\\ud83d"]\n')
    proc = run_mrl("makebatch", "1", "-replace", cwd=project)
    assert proc.returncode == 1 and "lone surrogate" in proc.stderr, proc.stderr


def test_a_step_mrl_could_not_start_is_failed_with_why_not_with_an_exit_code_it_never_had(project: Path) -> None:
    # The kernel refuses the step (here E2BIG: a 3 MB command line; EMFILE under a low
    # `ulimit -n`, EAGAIN under `ulimit -u` are the same path). before: `failed`, exit code
    # 127, as if the command had run and exited 127 ("command not found" to a shell).
    import json

    make_experiment(project, [{"x": 1}], "echo " + "a" * 3_000_000 + " > /dev/null")
    proc = run_mrl("run", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    record = json.loads((project / "output" / "0001" / "001" / ".mrl.status").read_text())
    assert record["state"] == "failed" and record["exitCode"] is None, record
    assert record["reason"] == "mrl could not start its step: argument list too long: /bin/sh", record
    status = run_mrl("status", cwd=project).stdout
    assert "mrl could not start its step: argument list too long" in status, status
