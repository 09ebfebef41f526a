"""Which sub-experiments a command acts on: `all`, `3`, `1,4-6`, narrowed by state; and
which experiments (`mrl table 2 3 5-9`, `--all`, `--tag NAME`).

`mrl run [EXP] [SELECTION]` takes up to two positionals. With one, it is the SELECTION
when it can only be one (`all`, or ids with `,` or `-`), otherwise the EXP: `mrl run 3`
runs experiment 3, `mrl run last 3` runs sub-experiment 3 of the newest experiment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from metarunlog.errors import MrlError
from metarunlog.experiment import RECORD, Experiment, SubExperiment

if TYPE_CHECKING:
    from metarunlog.project import Project
from metarunlog.states import FAILED_LIKE, JobState

ALL = "all"
_IDS = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*,?\s*$")


def looks_like_selection(text: str) -> bool:
    """True for what cannot be an experiment reference: `all`, `1,3`, `4-6`."""
    return text == ALL or (bool(_IDS.match(text)) and ("," in text or "-" in text))


def parse(spec: str) -> set[int] | None:
    """`all` -> None (everything); `1,4-6` -> {1, 4, 5, 6}."""
    spec = spec.strip()
    if spec in ("", ALL):
        return None
    if not _IDS.match(spec):
        raise MrlError(f"bad selection {spec!r}: use 'all', an id like 3, or a list like 1,4-6")
    ids: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        a, _, b = part.partition("-")
        lo, hi = int(a), int(b or a)
        if hi < lo:
            raise MrlError(f"bad range {part!r} in selection {spec!r}: write it low-high, like {hi}-{lo}")
        ids.update(range(lo, hi + 1))
    return ids


def pick(subs: Sequence[SubExperiment], spec: str) -> list[SubExperiment]:
    """The sub-experiments named by `spec`, in id order; an unknown id is an MrlError."""
    ids = parse(spec)
    if ids is None:
        return list(subs)
    known = {s.id for s in subs}
    missing = sorted(ids - known)
    if missing:
        have = f"{min(known)}-{max(known)}" if known else "none"
        raise MrlError(f"no sub-experiment {_fmt(missing)} in this experiment (it has {have}): see `mrl status`")
    return [s for s in subs if s.id in ids]


def narrow(states: Iterable[JobState], *, failed: bool = False, pending: bool = False) -> list[bool]:
    """Which of these states `--failed` / `--pending` keep (both: either)."""
    if not (failed or pending):
        return [True for _ in states]
    return [(failed and s in FAILED_LIKE) or (pending and s is JobState.PENDING) for s in states]


def _fmt(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


# -- which experiments (mrl table 2 3 5-9, --all, --tag) ------------------------------------------

TAGS = "tags"  # the experiment record's list of tag names (`mrl tag`)


def experiment_tags(exp: Experiment) -> list[str]:
    tags = exp.record.get(TAGS)
    return [str(t) for t in tags] if isinstance(tags, list) else []


def experiments(
    project: Project, refs: Sequence[str | int] = (), *, everything: bool = False, tags: Sequence[str] = ()
) -> list[Experiment]:
    """The experiments named by `refs` (ids, `5-9` ranges, `2,3` lists, `last`, paths),
    all of them (`everything`), and those tagged with any of `tags`, oldest first, once each.

    No refs and no flags: the default experiment (the one the current directory is in,
    else the newest). A range keeps the ids that exist; one that names none is an MrlError.
    """
    if not refs and not everything and not tags:
        return [project.load_exp(None)]
    chosen: dict[int, Experiment] = {}
    ids = project.experiment_ids()
    for ref in refs:
        for exp in _expand(project, str(ref), ids):
            chosen.setdefault(exp.id, exp)
    if everything or tags:
        for exp in project.experiments():
            if not (exp.dir / RECORD).is_file():
                continue  # being created by a concurrent `mrl new`
            if everything or set(tags) & set(experiment_tags(exp)):
                chosen.setdefault(exp.id, exp)
    if tags and not everything and not chosen:
        raise MrlError(f"no experiment is tagged {', '.join(tags)}: see `mrl ls` (tag one with `mrl tag EXP +NAME`)")
    return [chosen[i] for i in sorted(chosen)]


def _expand(project: Project, ref: str, ids: list[int]) -> list[Experiment]:
    if ref == ALL:
        return [e for e in project.experiments() if (e.dir / RECORD).is_file()]
    if not (_IDS.match(ref) and ("," in ref or "-" in ref)):
        return [project.load_exp(ref)]
    wanted = parse(ref) or set()
    found = [project.load_exp(str(i)) for i in ids if i in wanted]
    if not found:
        raise MrlError(f"no experiment in {ref} (see `mrl ls`)")
    return found
