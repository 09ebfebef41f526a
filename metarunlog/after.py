"""`run.after`: what runs once a whole `mrl run` ended (a report: `mrl analyze`).

A command or a list of commands (Jinja over expId, expDir, codeDir, shell-quoted like
`run.command`), run in order by `/bin/sh` in the experiment folder, stopping at the first
that fails; `mrl` in them is the mrl that ran the batch (its interpreter and code), whatever
PATH holds. The local backend runs them when the run ends (not when it was interrupted);
Slurm submits them as a job depending on every array of the run (`--dependency=afterany:...`),
so the report is written when the batch ends, without `--wait`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from metarunlog import render
from metarunlog.errors import MrlError

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
    return [render.command_template(x, where, "run.after").render(exp.template_params()) for x in sources]


def mrl_pythonpath() -> str:
    """PYTHONPATH for what mrl starts elsewhere: this mrl's package root first, then the caller's."""
    import metarunlog

    root = str(Path(metarunlog.__file__).resolve().parent.parent)
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return os.pathsep.join([root, *rest])


def prelude(expdir: Path) -> list[str]:
    """Shell lines before the steps: stop at the first failing one; `mrl` is this mrl."""
    py = shlex.quote(sys.executable)
    return [
        "set -e",
        f"export PYTHONPATH={shlex.quote(mrl_pythonpath())}",
        f'mrl() {{ {py} -m metarunlog "$@"; }}',
        f"cd {shlex.quote(str(expdir))}",
    ]


def run_here(exp: Experiment, commands: list[str]) -> int:
    """Run the steps now, on this machine (the local backend); their exit code."""
    script = "\n".join([*prelude(exp.dir), *commands]) + "\n"
    try:
        return subprocess.run(["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, check=False).returncode
    except OSError as e:
        raise MrlError(f"could not run run.after: {e}") from e
