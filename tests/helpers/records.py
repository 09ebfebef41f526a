"""Experiments and records made the way mrl makes them (`mrl new`, records.py), for tests
that need finished, running or failed sub-experiments without running anything."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import socket
from pathlib import Path
from typing import Any

from metarunlog import jsonio
from metarunlog.experiment import Experiment
from metarunlog.main import main
from metarunlog.project import Project
from metarunlog.records import BatchRecord, Status, SubRecord
from metarunlog.states import JobState

HOST = socket.gethostname()


def done(duration: float = 12.5, **changes: Any) -> Status:
    """The `.mrl.status` of a finished local run."""
    started = (
        Status()
        .begin(
            ["python train.py"],
            first=0,
            host=HOST,
            runner_pid=1,
            resource=None,
            backend="local",
            job_id=None,
            node=None,
        )
        .attempt_started("2024-01-01T10:00:00+00:00")
    )
    status = started.step_done(0).finished(JobState.DONE, 0, "2024-01-01T10:00:12+00:00", duration)
    return dataclasses.replace(status, runner_pid=None, **changes)


def running(pid: int, **changes: Any) -> Status:
    from metarunlog.procs import start_id

    status = Status().begin(
        ["python train.py"],
        first=0,
        host=HOST,
        runner_pid=pid,
        runner_start=start_id(pid),
        resource=None,
        backend="local",
        job_id=None,
        node=None,
    )
    started = status.attempt_started("2024-01-01T10:00:00+00:00").step_started(pid, start_id(pid))
    return dataclasses.replace(started, **changes)


def make_exp(
    basedir: Path, subs: list[dict[str, Any]], description: str = "made by a test", single: bool = False
) -> Experiment:
    """`mrl new`, then one folder per spec: params, and optionally status (dict), jsonl
    (list of dicts or raw text), metrics (metrics.json dict) and log (run.log text)."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["new", "-cp", "no", description]) == 0
    exp = Project.find(basedir).load_exp("last")
    for i, spec in enumerate(subs, 1):
        d = exp.dir if single else exp.subexp_dir(i)
        d.mkdir(exist_ok=True)
        if not single:
            jsonio.write_json(d / ".mrl", SubRecord(i, spec.get("params", {})).to_json())
        if spec.get("status") is not None:
            jsonio.write_json(d / ".mrl.status", spec["status"].to_json())
        if "jsonl" in spec:
            j = spec["jsonl"]
            (d / "metrics.jsonl").write_text(j if isinstance(j, str) else "".join(json.dumps(x) + "\n" for x in j))
        if "metrics" in spec:
            (d / "metrics.json").write_text(json.dumps(spec["metrics"]))
        if "log" in spec:
            (d / "run.log").write_text(spec["log"])
    batch = BatchRecord(n=len(subs), single=single, params=subs[0].get("params", {}) if single else None)
    exp.write_record(dataclasses.replace(exp.record, batch=batch))
    return Project.find(basedir).load_exp(str(exp.id))


def curve(n: int, lr: float) -> list[dict[str, Any]]:
    return [{"step": i, "loss": 1.0 / (i + 1) + lr, "acc": i / n} for i in range(n)]


def grid_exp(basedir: Path) -> Experiment:
    subs = [
        {"params": {"lr": 0.1, "wd": 1, "epochs": 3}, "status": done(10.0), "jsonl": curve(5, 0.1)},
        {
            "params": {"lr": 0.01, "wd": 1, "epochs": 3},
            "status": done(20.0),
            "jsonl": curve(5, 0.01),
            "metrics": {"test_acc": 0.9},
        },
        {"params": {"lr": 0.1, "wd": 2, "epochs": 3}, "status": done(state=JobState.FAILED, exit_code=1)},
        {"params": {"lr": 0.01, "wd": 2, "epochs": 3}},
    ]
    return make_exp(basedir, subs)


def record_of(basedir: Path, name: str, outdir: str = "output") -> dict[str, Any]:
    """The `.mrl` record of experiment folder `name` (`0002`) as JSON, read from the file."""
    return json.loads((basedir / outdir / name / ".mrl").read_text())  # type: ignore[no-any-return]


def params_of(basedir: Path, name: str, outdir: str = "output") -> dict[str, dict[str, Any]]:
    """Each sub-experiment folder of experiment `name` -> its params, read from the files."""
    exp = basedir / outdir / name
    return {p.parent.name: json.loads(p.read_text())["params"] for p in sorted(exp.glob("[0-9]*/.mrl"))}


def old_batch_exp(
    basedir: Path,
    template: str,
    subs: list[dict[str, Any]],
    grid: dict[str, list[Any]],
    defaults: dict[str, Any] | None = None,
) -> Experiment:
    """`mrl new`, then a batch written as an earlier mrl wrote one, before makebatch refused
    params named like a table column (`id`, `state`, `duration`, `exp`): the template in
    EXPDIR (conf.lua), per folder `.mrl` `{"subExpId": i, "params": ...}` and its rendered
    conf.lua, and EXPDIR/.mrl's batch block without `cli` (recorded only later). Each of
    `subs` as in `make_exp` (params, status, metrics, jsonl)."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["new", "-cp", "no", "an older mrl's batch"]) == 0
    exp = Project.find(basedir).load_exp("last")
    (exp.dir / "conf.lua").write_text(template)
    for i, spec in enumerate(subs, 1):
        d = exp.dir / f"{i:03d}"
        d.mkdir()
        params = spec["params"]
        (d / ".mrl").write_text(json.dumps({"subExpId": i, "params": params}, indent=2) + "\n")
        (d / "conf.lua").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in params.items()))
        if spec.get("status") is not None:
            (d / ".mrl.status").write_text(json.dumps(spec["status"].to_json()))
        if "metrics" in spec:
            (d / "metrics.json").write_text(json.dumps(spec["metrics"]))
        if "jsonl" in spec:
            (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in spec["jsonl"]))
    record = json.loads((exp.dir / ".mrl").read_text())
    record["batch"] = {
        "n": len(subs),
        "single": False,
        "templates": ["conf.lua"],
        "made": "2026-10-01T12:00:00+00:00",
        "grid": grid,
        "paramsList": None,
        "set": {},
        "repeat": None,
        "sample": None,
        "seed": None,
        "duplicates": 0,
        "defaults": defaults or {},
    }
    (exp.dir / ".mrl").write_text(json.dumps(record, indent=2) + "\n")
    return Project.find(basedir).load_exp(str(exp.id))
