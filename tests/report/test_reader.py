"""The report reads large experiments partly in a forked child (report.read_results):
the result must be exactly what reading in-process gives, errors and user metrics included."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

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
warnings = []
subs, errors = r.read_results(exp, project.basedir, 3, warnings)
print("FORKED" if "bokeh.plotting" in sys.modules else "IN-PROCESS", len(mine))
print(json.dumps({
    "ids": [s.name for s in subs],
    "params": [s.params for s in subs],
    "states": [str(s.state) for s in subs],
    "metrics": [s.metrics for s in subs],
    "curves": [{k: [x, list(xs), list(ys)] for k, (x, xs, ys) in (s.curves or {}).items()} for s in subs],
    "logs": [s.log_tail for s in subs],
    "errors": errors,
    "warnings": warnings,
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
    # the readers' warnings reach the report from the child's reads too (once each)
    said = "004/metrics.jsonl: skipped 1 line(s) that are not JSON objects (the first: line 2)"
    assert len(in_process["warnings"]) == 1 and in_process["warnings"][0].endswith(said), in_process["warnings"]


def test_a_long_curve_is_read_into_arrays_without_holding_its_rows(project: Path) -> None:
    # The report kept every row of a metrics.jsonl as a dict before making its curves: a 192 MB
    # file (2M lines, 4 metrics) peaked at 885 MB in `mrl analyze`; it now streams (175 MB).
    import tracemalloc

    from metarunlog import results
    from metarunlog.project import Project
    from metarunlog.report import reader

    n = 60_000
    rows = [{"step": s, "loss": 1 / (s + 1), "acc": s / n, "lr": 0.1} for s in range(n)]
    exp = make_exp(project, [{"params": {"x": 1}, "jsonl": rows}])
    (exp.subexp_dir(1) / "metrics.csv").write_text("".join(["epoch,val_loss\n", *(f"{e},{e / 7}\n" for e in range(9))]))
    exp = Project.find(project).load_exp("last")
    finder = results.finder_for(exp, project)
    tracemalloc.start()
    res, _, _ = reader._read_one(exp.sub_experiments()[0], finder, None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 12_000_000, peak  # the 60,000 rows as dicts alone take ~25 MB
    assert res.curves is not None and sorted(res.curves) == ["acc", "loss", "lr", "val_loss"]
    xkey, xs, ys = res.curves["loss"]
    assert (xkey, len(xs), xs[-1], ys[0]) == ("step", n, n - 1, 1.0)
    assert res.curves["acc"][1] is xs  # metrics of the same lines share one steps array
    assert res.curves["val_loss"][0] == "epoch" and list(res.curves["val_loss"][2])[-1] == 8 / 7


def test_curves_built_batch_by_batch_equal_the_curves_of_all_rows_at_once(monkeypatch: Any) -> None:
    # Rows with and without step keys, strings, bools and NaN, metrics that come and go:
    # any batch size gives what `results.curves` gives over the whole list.
    import random

    from metarunlog import results

    rng = random.Random(1)
    keys = ("step", "epoch")
    for _ in range(400):
        rows = []
        for i in range(rng.randint(0, 30)):
            row: dict[str, Any] = {}
            if rng.random() < 0.7:
                row["step"] = rng.choice([i, 2 * i, "x"])
            if rng.random() < 0.2:
                row["epoch"] = i // 3
            row.update({k: rng.choice([i / 2, math.nan, "s", True, i]) for k in "abc" if rng.random() < 0.8})
            rows.append(row)
        monkeypatch.setattr(results.CurveBuilder, "BATCH", rng.randint(1, 7))
        built = results.CurveBuilder(keys)
        results._fan_out(rows, (built.add,))
        got = {m: (x, repr(list(xs)), repr(list(ys))) for m, (x, xs, ys) in built.result().items()}
        want = {m: (x, repr([float(v) for v in xs]), repr([float(v) for v in ys]))
                for m, (x, xs, ys) in results.curves(rows, keys).items()}  # fmt: skip
        assert got == want, rows


def test_a_curve_past_its_cap_is_halved_keeping_its_spikes_and_stays_bounded(monkeypatch: Any) -> None:
    # every point of every curve was kept: 16 bytes a point a metric, however long the run
    from metarunlog import results

    monkeypatch.setattr(results.CurveBuilder, "MAX_POINTS", 100)
    built = results.CurveBuilder(("step",))
    n = 5_000
    rows = [{"step": s, "loss": 1.0 if s != 1234 else 50.0, "acc": 0.5 if s != 4321 else -7.0} for s in range(n)]
    results._fan_out(rows, (built.add,))
    out = built.result()
    for metric, spike, at in (("loss", 50.0, 1234), ("acc", -7.0, 4321)):
        _, xs, ys = out[metric]
        assert len(xs) == len(ys) < 2 * 100 + results.CurveBuilder.BATCH  # bounded, not n
        assert list(xs) == sorted(xs) and xs[-1] == n - 1  # in step order, up to the last row
        assert ys[list(xs).index(at)] == spike  # the spike is kept, at its step
