"""scripts/slurm-up.sh, the tests' own cluster: what it leaves to the daemons it starts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm-up.sh"


def test_slurm_up_starts_every_daemon_without_the_descriptors_of_whoever_ran_it() -> None:
    # `flock /work/notes/bench.lock pytest ...` holds its lock as fd 3; munged keeps what it
    # inherits for its whole life, so the lock was held until the cluster stopped.
    text = SCRIPT.read_text()
    func = re.search(r"^detached\(\) \{\n.*?^\}\n", text, re.S | re.M)
    assert func, "slurm-up.sh has no detached() helper"
    starts = [ln for ln in text.splitlines() if re.match(r"\s*(\(\s*detached\s+)?(runuser|slurmctld|slurmd)\b", ln)]
    assert len(starts) == 3 and all("detached " in ln for ln in starts), starts
    probe = func.group(0) + "exec 3</dev/null 7</dev/null\n( detached sh -c 'ls /proc/$$/fd' )\n"
    fds = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert "3" not in fds and "7" not in fds, fds
