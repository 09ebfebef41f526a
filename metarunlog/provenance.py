"""What an experiment pinned, against what the project has now: the lines `mrl run` says
about it (the pinned run block, a HEAD that moved on), and the param sets `mrl rerun` and
`mrl reproduce` take from an experiment. Returns strings; the commands print them."""

from __future__ import annotations

from typing import Any

from metarunlog.config import CFG_NAME, merge, read_cfg_file, run_defaults
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment, SubExperiment
from metarunlog.project import Project


def run_block_note(project: Project, exp: Experiment) -> str | None:
    """One line when the project's current `run` block differs from the one `exp` pinned
    (which is what it runs), naming the keys; None when they agree or nothing is pinned."""
    pinned = exp.pinned_run
    if not pinned:
        return None
    changed = differing_keys(merge(run_defaults(), pinned), dict(project.cfg.run), "run")
    if not changed:
        return None
    over = _overridden(exp)
    over_note = f"; {exp.name}/{CFG_NAME} sets {', '.join(over)}" if over else ""
    return (
        f"{exp.name} runs the run block pinned by `mrl new`{over_note}; the project's {CFG_NAME} differs now "
        f"({_few(changed)}): to change what {exp.name} runs, set it in {exp.dir / CFG_NAME}; "
        f"`mrl rerun {exp.id}` makes a new experiment with the current block"
    )


def _overridden(exp: Experiment) -> list[str]:
    """The run.* keys EXPDIR/.mrl.cfg sets (explicit overrides of the pinned block)."""
    path = exp.dir / CFG_NAME
    if not path.is_file():
        return []
    try:
        run = read_cfg_file(path).get("run")
    except MrlError:
        return []
    return sorted(flatten(run, "run")) if isinstance(run, dict) else []


def head_note(project: Project, exp: Experiment, rerun_args: str = "") -> str | None:
    """One line when HEAD has moved past the commit `exp` pinned: which commit runs, how far
    HEAD is (`git rev-list --count`), and how to run the new code (`mrl rerun`)."""
    from metarunlog import git

    pinned = exp.record.commit
    try:
        repo = git.toplevel(project.basedir)
        if repo is None or not pinned:
            return None
        head = git.rev_parse(repo)
        if head is None or head == pinned or not git.has_commit(repo, pinned):
            return None
        ahead = git.count_commits(repo, pinned, head)
        behind = git.count_commits(repo, head, pinned)
    except MrlError:
        return None  # no git, or a repository mrl cannot read: nothing to compare
    if ahead == 0:
        return None  # HEAD is behind it (an older checkout): not new code
    where = f"HEAD is {_commits(ahead)} ahead" + (
        f" on another line ({_commits(behind)} of it not in HEAD)" if behind else ""
    )
    args = f" {rerun_args}" if rerun_args else ""
    return (
        f"{exp.name} runs its pinned code, commit {pinned[:10]}; {where}: `mrl rerun {exp.id}{args}` "
        f"runs these param sets on the new code, as a new experiment"
    )


def _commits(n: int) -> str:
    return f"{n} commit" + ("" if n == 1 else "s")


def differing_keys(a: dict[str, Any], b: dict[str, Any], prefix: str) -> list[str]:
    """Dotted keys whose values differ between two nested dicts (`run.slurm.partition`)."""
    fa, fb = flatten(a, prefix), flatten(b, prefix)
    return [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k, _MISSING) != fb.get(k, _MISSING)]


_MISSING = object()


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def _few(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


# -- the param sets mrl rerun and mrl reproduce take from an experiment ---------------------------


def selected(exp: Experiment, selection: str | None, *, failed: bool = False) -> list[SubExperiment]:
    """The sub-experiments of `exp` a SELECTION (default: all) names, only the failed,
    cancelled, timed-out or stale ones with `failed`."""
    from metarunlog.backends.base import Job, observe_any
    from metarunlog.selection import narrow, pick

    subs = exp.sub_experiments()
    if not subs:
        raise MrlError(f"experiment {exp.name} has no sub-experiments: there are no param sets to take")
    subs = pick(subs, selection)
    if failed:
        keep = narrow(observe_any(exp, [Job(s) for s in subs]), failed=True)
        subs = [s for s, k in zip(subs, keep, strict=True) if k]
        if not subs:
            raise MrlError(f"no failed sub-experiment in {exp.name} (see `mrl status {exp.id}`): nothing to rerun")
    return subs


def param_sets(subs: list[SubExperiment]) -> list[tuple[int, dict[str, Any]]]:
    """(sub-experiment id, params) of each, as the new experiment's sub-experiments get them."""
    return [(s.id, s.own_params) for s in subs]


def origin(exp: Experiment, subs: list[SubExperiment]) -> dict[str, Any]:
    """The `rerunOf` / `reproduces` value: which experiment, which of its sub-experiments,
    and the commit it pinned."""
    return {"expId": exp.id, "subExpIds": [s.id for s in subs], "gitHash": exp.record.git_hash}
