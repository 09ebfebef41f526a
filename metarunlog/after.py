"""`run.after`: what runs once a whole `mrl run` ended (a report: `mrl analyze`).

A command or a list of commands (Jinja over expId, expDir, codeDir, shell-quoted like
`run.command`), run in order by `/bin/sh` in the experiment folder, stopping at the first
that fails; `mrl` in them is the mrl that ran the batch (its interpreter and code), whatever
PATH holds. The local backend runs them when the run ends (not when it was interrupted);
Slurm submits them as a job depending on every array of the run (`--dependency=afterany:...`),
so the report is written when the batch ends, without `--wait`.

That job keeps a record, `EXPDIR/.mrl.slurm/after-NNN.json` (next to its script
`after-NNN.sh`), through `python -m metarunlog.after RECORD start|end CODE`: `running`
when its steps start, then `done` or `failed` with their exit code. `mrl status` shows it
(from Slurm while Slurm knows the job, and writes Slurm's verdict into the record when the
job could not: cancelled, timed out), so its state outlives the scheduler's memory.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarunlog import jsonio, render
from metarunlog.errors import MrlError
from metarunlog.states import JobState

if TYPE_CHECKING:
    from metarunlog.experiment import Experiment


def steps(exp: Experiment) -> list[str]:
    """`run.after` rendered, one shell command per entry ([] when unset)."""
    raw = exp.cfg["run"].get("after")
    if not raw:
        return []
    where = exp.cfg.path or "the project's .mrl.cfg"
    sources = [raw] if isinstance(raw, str) else list(raw)
    if not all(isinstance(x, str) and x.strip() for x in sources):
        raise MrlError(f"run.after in {where} must be a command or a list of commands")
    variables = exp.template_params()
    return [render.command_template(x, where, "run.after").render(variables, only=True) for x in sources]


def mrl_pythonpath() -> str:
    """PYTHONPATH for what mrl starts elsewhere: this mrl's package root first, then the caller's."""
    import metarunlog

    root = str(Path(metarunlog.__file__).resolve().parent.parent)
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return os.pathsep.join([root, *rest])


def mrl_python() -> str:
    """The shell words that start this mrl's Python with its code importable: its
    PYTHONPATH goes to that command only. Exported, it reached the steps too, and put
    mrl's own site-packages ahead of the packages of the Python a step runs."""
    return f"PYTHONPATH={shlex.quote(mrl_pythonpath())} {shlex.quote(sys.executable)}"


def prelude(expdir: Path) -> list[str]:
    """Shell lines before the steps: `mrl` is this mrl, and they run in the experiment's
    folder or not at all (the callers add `set -e` where the steps stop at the first failure)."""
    return [
        f'mrl() {{ {mrl_python()} -m metarunlog "$@"; }}',
        f"cd {shlex.quote(str(expdir))} || exit 1",
    ]


def recorded_script(expdir: Path, commands: Sequence[str], record: Path) -> list[str]:
    """The steps as a batch job's lines: its record says `running`, then how the steps
    ended (stopping at the first that fails); the job's exit code is theirs."""
    keep = f"{mrl_python()} -m metarunlog.after {shlex.quote(str(record))}"
    # `set -e` inside the ( ): the job goes on to write how the steps ended
    return [
        *prelude(expdir),
        f'mrl_record_after() {{ {keep} "$@" || true; }}',
        "mrl_record_after start",
        "(",
        "set -e",
        *commands,
        ")",
        "code=$?",
        'mrl_record_after end "$code"',
        'exit "$code"',
    ]


def start_record(environ: Mapping[str, str]) -> dict[str, Any]:
    """The record of a run.after job whose steps start now, in the job's environment."""
    return {
        "jobId": environ.get("SLURM_JOB_ID"),
        "state": JobState.RUNNING.value,
        "start": jsonio.now(),
        "node": environ.get("SLURMD_NODENAME"),
    }


def end_record(old: Mapping[str, Any], code: int) -> dict[str, Any]:
    """`old` once the steps ended with exit code `code`."""
    state = JobState.DONE if code == 0 else JobState.FAILED
    return {**old, "state": state.value, "exitCode": code, "end": jsonio.now()}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m metarunlog.after RECORD start|end CODE` (what the run.after job runs).
    Never fails the job: a record it cannot write is said on stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[1] not in ("start", "end") or (args[1] == "end" and len(args) < 3):
        print("usage: python -m metarunlog.after RECORD start|end CODE", file=sys.stderr)
        return 2
    record = Path(args[0])
    try:
        if args[1] == "start":
            jsonio.write_json(record, start_record(os.environ))
        else:
            old = jsonio.read_json_or(record, {})
            jsonio.write_json(record, end_record(old if isinstance(old, dict) else {}, int(args[2])))
    except (OSError, ValueError, MrlError) as e:
        print(f"mrl: could not write the run.after record {record}: {e}", file=sys.stderr)
    return 0


def run_here(exp: Experiment, commands: list[str]) -> int:
    """Run the steps now, on this machine (the local backend); their exit code."""
    script = "\n".join(["set -e", *prelude(exp.dir), *commands]) + "\n"
    try:
        return subprocess.run(["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, check=False).returncode
    except OSError as e:
        raise MrlError(f"could not run run.after: {e}") from e


if __name__ == "__main__":
    raise SystemExit(main())
