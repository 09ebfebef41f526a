"""The report reads large experiments partly in a forked child (report.read_results):
the result must be exactly what reading in-process gives, errors and user metrics included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.records import done, make_exp
from tests.helpers.repo import REPO_ROOT, commit_all

SCRIPT = """
import json, os, sys, time
import metarunlog.report.reader as r
from metarunlog.project import Project
r.FORK_MIN_SUBS = int(sys.argv[1])
parent, read_one, mine = os.getpid(), r._read_one, []
def slow_child(sub, finder, log_lines):  # argv[2] == "slow": the child is slow, the parent reads most
    if os.getpid() != parent:
        time.sleep(1.0)
    else:
        mine.append(sub.id)
    return read_one(sub, finder, log_lines)
if sys.argv[2] == "slow":
    r._read_one = slow_child
project = Project.find()
exp = project.load_exp("last")
subs, errors = r.read_results(exp, project.basedir, 3)
print("FORKED" if "bokeh.plotting" in sys.modules else "IN-PROCESS", len(mine))
print(json.dumps({
    "ids": [s.name for s in subs],
    "params": [s.params for s in subs],
    "states": [str(s.state) for s in subs],
    "metrics": [s.metrics for s in subs],
    "curves": [{k: [x, list(xs), list(ys)] for k, (x, xs, ys) in (s.curves or {}).items()} for s in subs],
    "logs": [s.log_tail for s in subs],
    "errors": errors,
}, sort_keys=True))
"""


def read(project: Path, fork_min: int, child: str = "") -> tuple[str, dict]:
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(fork_min), child or "as-is"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    how, data = r.stdout.strip().splitlines()[-2:]
    return how, json.loads(data)


def test_reading_in_a_forked_child_gives_what_reading_in_process_gives(project: Path) -> None:
    (project / "mrl_analyze.py").write_text(
        "def metrics(d):\n"
        "    if d.endswith('007'):\n"
        "        raise ValueError('no score for 7')\n"
        "    return {'score': len(d)}\n"
    )
    commit_all(project, "analyze")
    subs = []
    for i in range(12):
        lines = [{"step": s, "loss": 1.0 / (s + i + 1), "acc": s * 0.01} for s in range(30)]
        log = "".join(f"run {i} line {n}\n" for n in range(i))
        subs.append({"params": {"lr": i % 3, "seed": i}, "status": done(), "jsonl": lines, "log": log})
    subs[3]["jsonl"] = '{"step": 1, "loss": 0.5}\nnot json\n'
    make_exp(project, subs)
    (project / "output" / "0001" / "005" / ".mrl").write_text("{broken")
    how_in, in_process = read(project, 10_000)
    how_fork, forked = read(project, 1)
    assert (how_in.split()[0], how_fork.split()[0]) == ("IN-PROCESS", "FORKED")
    assert forked == in_process
    # A slow child: the parent, done importing bokeh, reads from the last one down until
    # they meet; the two halves join in order, each run once.
    how_slow, shared = read(project, 1, "slow")
    assert how_slow.split()[0] == "FORKED" and int(how_slow.split()[1]) > 0, how_slow
    assert shared == in_process
    assert in_process["curves"][0]["loss"][0] == "step"
    assert in_process["logs"][:3] == [[], ["run 1 line 0"], ["run 2 line 0", "run 2 line 1"]]
    assert in_process["logs"][11] == ["run 11 line 8", "run 11 line 9", "run 11 line 10"]  # the last 3
    assert any("no score for 7" in e for e in in_process["errors"])
    assert any("005" in e for e in in_process["errors"])
