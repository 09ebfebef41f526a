"""A new experiment made from another one's param sets: what `mrl rerun` and `mrl reproduce`
share. The new experiment is a plain `mrl new` (pinned code, copied config files, pinned
run block) whose sub-experiments are rendered from its own templates with the source's
params, keeping the source's sub-experiment ids; a failure leaves no half experiment."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from metarunlog import jsonio
from metarunlog.batch import Overrides
from metarunlog.commands.new import NewResult, new
from metarunlog.config import CFG_NAME, read_cfg_file
from metarunlog.experiment import Experiment, SubExperiment
from metarunlog.project import Project
from metarunlog.provenance import param_sets


@dataclass
class Derived:
    made: NewResult
    source: Experiment
    subs: list[SubExperiment]
    names: list[str]  # the new sub-experiment folders
    warnings: list[str]

    @property
    def exp(self) -> Experiment:
        return self.made.exp


def derive(
    project: Project,
    source: Experiment,
    subs: list[SubExperiment],
    cfg_keys: dict[str, Any] | None = None,
    **new_args: Any,
) -> Derived:
    """`new(project, **new_args)`, then one sub-experiment per `subs` with its params.
    `cfg_keys` go into the new EXPDIR/.mrl.cfg (over the source's, copied)."""
    from metarunlog.commands.makebatch import make_subexperiments

    batches = []

    def make_batch(made: NewResult) -> None:
        _copy_overrides(source, made, cfg_keys or {})
        repeat = source.record.batch.repeat if source.record.batch else None
        batches.append(make_subexperiments(project, made.exp.id, param_sets(subs), _source_overrides(source), repeat))

    # within new(): a failure or a signal until it returns leaves no experiment without its batch
    made = new(project, then=make_batch, **new_args)
    return Derived(made, source, subs, batches[0].names, batches[0].warnings)


def _source_overrides(source: Experiment) -> Overrides:
    """The source batch's --set/--grid/--repeat: part of its sweep, as its template is."""
    batch = source.record.batch
    return Overrides.from_record(batch.to_json()) if batch else Overrides()


def _copy_overrides(source: Experiment, made: NewResult, keys: dict[str, Any]) -> None:
    """The source's own EXPDIR/.mrl.cfg: its explicit overrides are part of what it ran
    (and they still override the new experiment's pinned run block); `keys` over it."""
    src = source.dir / CFG_NAME
    if not src.is_file() and not keys:
        return
    exp = made.exp
    dst = exp.dir / CFG_NAME
    with jsonio.naming(dst):
        if keys:
            data = read_cfg_file(src) if src.is_file() else {}
            dst.write_text(json.dumps({**data, **keys}, indent=2) + "\n")
        else:
            dst.write_bytes(src.read_bytes())
    if src.is_file():
        made.copied[CFG_NAME] = source.name
        exp.write_record(dataclasses.replace(exp.record, copied={**exp.record.copied, CFG_NAME: source.name}))


def span(names: list[str]) -> str:
    """`001, 004, 005` (a few names, then how many more)."""
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
