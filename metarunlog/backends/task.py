"""`python -m metarunlog.backends.task EXPDIR SUBEXP_ID --backend NAME`: execute one
sub-experiment in a process of its own, as a scheduler's task does. With `--plan FILE`
the number is a task's index in a submission's plan, which the backend runs
(`Backend.run_plan`; each Slurm array task runs `... $SLURM_ARRAY_TASK_ID --plan ...`).

It is `metarunlog.execute.execute` for that sub-experiment, with the job id and node the
backend reads from the scheduler's environment (`Backend.task_ids`). SIGTERM, SIGINT and
SIGHUP stop the running step, which is then recorded as cancelled. Exit code: 0 done,
130 cancelled, 1 otherwise. `python -m metarunlog.execute ...` (what sbatch scripts written
by earlier versions run) is the same command.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from metarunlog import plugins
from metarunlog.backends import registry
from metarunlog.errors import MrlError
from metarunlog.experiment import SubExperiment
from metarunlog.states import JobState

if TYPE_CHECKING:
    from metarunlog.execute import Stopper


def task_command(
    expdir: Path, sub_id: str, backend: str, *, retries: int = 0, force: bool = False, plan: Path | None = None
) -> list[str]:
    """The argv of one task, with this mrl's interpreter (`sub_id` may be a shell variable).

    `force`: run it even when its record says done (`mrl run --force`, `RunOptions.force`).

    `plan`: a JSON file written at submit time. A submission's plan (`{"tasks": [[ids...],
    ...], ...}`, Slurm's `submit-NNN.json`) makes `sub_id` the task's index in it; the
    backend's `run_plan` runs that task's sub-experiments. A map `{"<sub id>":
    fingerprint}` (`SubExperiment.fingerprint()`) keeps `sub_id` a sub-experiment id: when
    it no longer matches its fingerprint it is skipped (exit 1, its record untouched)
    instead of running what replaced it.
    """
    argv = [sys.executable, "-m", "metarunlog.backends.task", str(expdir), sub_id, "--backend", backend]
    argv += ["--retries", str(retries)] if retries else []
    argv += ["--force"] if force else []
    spec = next((s for s in registry.specs() if s.name == backend), None)
    if spec is not None and plugins.is_foreign(spec.module):  # from outside mrl: the task registers it first
        argv += ["--import", spec.module]
    return argv + (["--plan", str(plan)] if plan is not None else [])


def import_plugins(argv: list[str]) -> None:
    """Import each `--import MODULE` of argv (a backend from outside mrl registers itself
    on import), before `--backend` is checked against the registered names."""
    import argparse
    import importlib

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--import", dest="imports", action="append", default=[])
    for module in pre.parse_known_args(argv)[0].imports:
        with plugins.blamed(f"importing {module}", module):
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise MrlError(f"--import {module}: {e} (is it installed where the task runs?)") from e


def is_submission_plan(plan: Path | None) -> bool:
    """True for a submission's plan (its tasks), False for a fingerprint map (or none)."""
    if plan is None:
        return False
    from metarunlog import jsonio

    try:
        data = jsonio.read_json(plan)
    except (OSError, ValueError) as e:
        raise MrlError(f"cannot read the plan {plan}: {e}") from e
    return isinstance(data, dict) and isinstance(data.get("tasks"), list)


def planned_fingerprint(plan: Path | None, sub_id: int) -> str | None:
    """The fingerprint `plan` recorded for `sub_id`; a plan without it: "" (matches nothing)."""
    if plan is None:
        return None
    from metarunlog import jsonio

    data = jsonio.read_json(plan)
    value = data.get(str(sub_id)) if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def find_sub(expdir: Path, sub_id: int) -> SubExperiment:
    from metarunlog.project import Project

    project = Project.find(expdir)
    exp = project.load_exp(str(expdir))
    for sub in exp.sub_experiments():
        if sub.id == sub_id:
            return sub
    raise MrlError(f"experiment {expdir} has no sub-experiment {sub_id}")


def run_task(
    sub: SubExperiment,
    backend: str,
    stop: Stopper,
    *,
    retries: int = 0,
    force: bool = False,
    fingerprint: str | None = None,
) -> JobState:
    """Execute `sub` as a task of `backend` until it ends or `stop` is requested (raises
    execute.Changed when `fingerprint` no longer matches it)."""
    from metarunlog.config import DEFAULT_HEARTBEAT_S
    from metarunlog.execute import ExecOptions, Heartbeat, execute

    job_id, node = registry.get_backend(backend).task_ids()
    heartbeat = Heartbeat(float(sub.exp.cfg["run"].get("heartbeat") or DEFAULT_HEARTBEAT_S))
    options = ExecOptions(
        backend=backend,
        job_id=job_id,
        node=node,
        stop=stop,
        retries=retries,
        force=force,
        fingerprint=fingerprint,
        heartbeat=heartbeat,
    )
    try:
        return execute(sub, options).state
    finally:
        heartbeat.close()


def _stop_on_signals() -> Stopper:
    from metarunlog.execute import Stopper

    stop = Stopper()

    def on_signal(signum: int, frame: object) -> None:
        stop.stop(signal.SIGTERM)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    return stop


def main(argv: list[str] | None = None, prog: str = "python -m metarunlog.backends.task") -> int:
    import argparse  # the task's own command line, like main.py's

    from metarunlog.error_handler import Exit, error_handler

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        with error_handler():
            import_plugins(argv)
    except Exit as e:
        return e.code
    p = argparse.ArgumentParser(prog=prog, description="Execute one sub-experiment (what each Slurm array task runs).")
    p.add_argument("expdir", type=Path)
    p.add_argument("subexp_id", type=int)
    p.add_argument("--backend", default="slurm", choices=registry.names())
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module to import first: one that registers the backend (a backend from outside mrl)",
    )
    p.add_argument("--retries", type=int, default=0)
    p.add_argument("--force", action="store_true")
    p.add_argument(
        "--plan",
        type=Path,
        help="a submission's plan (SUBEXP_ID is then the task's index in it), "
        "or JSON {sub id: fingerprint} written when the tasks were planned",
    )
    args = p.parse_args(argv)
    try:
        with error_handler():
            if is_submission_plan(args.plan):
                return registry.get_backend(args.backend).run_plan(args.expdir.resolve(), args.plan, args.subexp_id)
        stop = _stop_on_signals()
        with error_handler():
            sub = find_sub(args.expdir.resolve(), args.subexp_id)
            state = run_task(
                sub,
                args.backend,
                stop,
                retries=args.retries,
                force=args.force,
                fingerprint=planned_fingerprint(args.plan, args.subexp_id),
            )
            print(f"mrl: sub-experiment {sub.name}: {state}", file=sys.stderr)
            return {JobState.DONE: 0, JobState.CANCELLED: 130}.get(state, 1)
    except Exit as e:
        return e.code


if __name__ == "__main__":
    raise SystemExit(main())
