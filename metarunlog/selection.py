"""Which sub-experiments a command acts on: `all`, `3`, `1,4-6`, narrowed by state; and
which experiments (`mrl table 2 3 5-9`, `--all`, `--tag NAME`).

`mrl run [EXP] [SELECTION]` takes up to two positionals. With one, it is the SELECTION
when it can only be one (`all`, or ids with `,` or `-`), otherwise the EXP: `mrl run 3`
runs experiment 3, `mrl run last 3` runs sub-experiment 3 of the newest experiment.
`EXP/SELECTION` in one argument (`2/3`, `2/1-4`, `last/all`) and the path of a
sub-experiment folder name both at once; inside a sub-experiment folder the default is
that sub-experiment (`resolve_targets`).

A selection is kept as sorted ranges, never expanded: `1-99999999999` costs two numbers,
and checking it against the existing ids costs what the experiment holds.
"""

from __future__ import annotations

import bisect
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from metarunlog.errors import MrlError
from metarunlog.experiment import RECORD, Experiment, SubExperiment, is_id, parse_id
from metarunlog.states import FAILED_LIKE, JobState

if TYPE_CHECKING:
    from metarunlog.project import Project

ALL = "all"
# re.ASCII: ids are ASCII digits (`\d` alone takes any script's digits, as int() does).
_IDS = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*,?\s*$", re.ASCII)
_EXP_SLASH_SEL = re.compile(r"^(\d+|last)/(.+)$", re.ASCII)
Ranges = list[tuple[int, int]]  # sorted, disjoint, inclusive (lo, hi)


def split_sub_ref(ref: str) -> tuple[str, str] | None:
    """(experiment ref, selection) when `ref` reads as `EXP/SELECTION` (`2/3`, `2/1-4,7`,
    `last/all`), else None. Only its shape: whether the experiment exists is not asked."""
    m = _EXP_SLASH_SEL.match(ref)
    return (m.group(1), m.group(2)) if m and _is_selection(m.group(2)) else None


def looks_like_selection(text: str) -> bool:
    """True for what cannot be an experiment reference: `all`, `1,3`, `4-6`."""
    return text == ALL or (bool(_IDS.match(text)) and ("," in text or "-" in text))


def parse(spec: str | None) -> Ranges | None:
    """`all` (or None) -> None (everything); `1,4-6,5` -> [(1, 1), (4, 6)]."""
    spec = (spec or "").strip()
    if spec in ("", ALL):
        return None
    if not _IDS.match(spec):
        raise MrlError(f"bad selection {spec!r}: use 'all', an id like 3, or a list like 1,4-6")
    ranges = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        a, _, b = part.partition("-")
        lo, hi = int(a), int(b or a)
        if hi < lo:
            raise MrlError(f"bad range {part!r} in selection {spec!r}: write it low-high, like {hi}-{lo}")
        ranges.append((lo, hi))
    return _merged(ranges)


def _merged(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def spec_of(ids: Iterable[int], limit: int = 10) -> str:
    """The selection naming `ids` (`[1, 2, 3, 5]` -> `1-3,5`), at most `limit` ranges of it
    (then `... and N more`): what a command can print for thousands of sub-experiments."""
    ranges = _merged([(i, i) for i in set(ids)])
    shown = ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges[:limit])
    return shown + (f" and {len(ranges) - limit} more" if len(ranges) > limit else "")


def pick(subs: Sequence[SubExperiment], spec: str | None, gone: Collection[int] = ()) -> list[SubExperiment]:
    """The sub-experiments named by `spec`, in id order; an id that does not exist is an
    MrlError naming the missing ids as ranges (memory: the experiment's ids, not the range).
    `gone`: ids whose folders a run saw removed (`metarunlog.gone`): named, they are no
    error (the caller says what is known of them)."""
    ranges = parse(spec)
    if ranges is None:
        return list(subs)
    known = sorted(s.id for s in subs)
    missing = _gaps(ranges, sorted(set(known) | set(gone)))
    if missing:
        which = f"experiment {subs[0].exp.name}" if subs else "this experiment"
        raise MrlError(
            f"no sub-experiment {_fmt_ranges(missing)} in {which} (it has "
            f"{_fmt_ranges(_merged([(i, i) for i in known])) or 'none'}): see `mrl status`"
        )
    return [s for s in subs if _contains(ranges, s.id)]


def selected(spec: str | None, ids: Iterable[int]) -> list[int]:
    """The ids among `ids` that `spec` names (all of them for none), in their order."""
    ranges = parse(spec)
    return [i for i in ids if ranges is None or _contains(ranges, i)]


def _contains(ranges: Ranges, i: int) -> bool:
    k = bisect.bisect_right(ranges, (i, float("inf"))) - 1
    return k >= 0 and ranges[k][0] <= i <= ranges[k][1]


def _gaps(ranges: Ranges, known: list[int]) -> Ranges:
    """The parts of `ranges` holding no id of `known` (sorted)."""
    gaps: Ranges = []
    for lo, hi in ranges:
        start = lo
        for i in known[bisect.bisect_left(known, lo) : bisect.bisect_right(known, hi)]:
            if i > start:
                gaps.append((start, i - 1))
            start = i + 1
        if start <= hi:
            gaps.append((start, hi))
    return gaps


def _fmt_ranges(ranges: Ranges, limit: int = 10) -> str:
    shown = ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges[:limit])
    return shown + (f" and {len(ranges) - limit} more" if len(ranges) > limit else "")


def narrow(states: Iterable[JobState], *, failed: bool = False, pending: bool = False) -> list[bool]:
    """Which of these states `--failed` / `--pending` keep (both: either)."""
    if not (failed or pending):
        return [True for _ in states]
    return [(failed and s in FAILED_LIKE) or (pending and s is JobState.PENDING) for s in states]


# -- which experiments (mrl table 2 3 5-9, --all, --tag) ------------------------------------------


def tag_name(text: str) -> str:
    """An argparse type for `--tag NAME` (ls, table): an empty name (`--tag "$T"`, T unset)
    is an error, not a search that finds nothing."""
    if not text:
        import argparse

        raise argparse.ArgumentTypeError("bad tag '': give the NAME of a tag, as `mrl ls` shows it after #")
    return text


def experiment_tags(exp: Experiment) -> list[str]:
    """The experiment record's tags (`mrl tag`)."""
    return list(exp.record.tags)


def experiments(
    project: Project,
    refs: Sequence[str | int] = (),
    *,
    everything: bool = False,
    tags: Sequence[str] = (),
    skipped: list[str] | None = None,
    subs: dict[int, str] | None = None,
) -> list[Experiment]:
    """The experiments named by `refs` (ids, `5-9` ranges, `2,3` lists, `last`, paths),
    all of them (`everything`), and those tagged with any of `tags`, oldest first, once each.

    `subs` (a command that can show some sub-experiments: `mrl table 2/3,4 5`): a ref
    naming sub-experiments (`sub_target`) chooses its experiment and adds the selection to
    `subs[exp.id]` (`2/3 2/5`: "3,5"); an experiment also named whole (`2 2/3`, `--all`)
    has no entry. Without `subs` such a ref is read as an experiment.

    No refs and no flags: the default experiment (the one the current directory is in,
    else the newest). A range keeps the ids that exist and have a record; one that names
    none is an MrlError.

    `skipped` (a command over several): an experiment that cannot be read (its record or
    `EXPDIR/.mrl.cfg` corrupt or unreadable) or a ref that names none is left out, and one
    line naming it and why is added to `skipped`, so that the others are still shown. When
    none is left the reasons are the MrlError (one experiment asked for: its error alone).
    Without `skipped` the first such error is raised.
    """
    if not refs and not everything and not tags:
        return [project.load_exp(None)]
    chosen: dict[int, Experiment] = {}
    problems: list[tuple[str, str]] = []  # (what was asked for, why it is left out)
    ids = project.experiment_ids()
    parts: dict[int, list[str]] = {}  # experiment id -> the selections naming some of its subs
    whole: set[int] = set()
    for ref in refs:
        try:
            target = sub_target(project, str(ref)) if subs is not None else None
            found = [target[0]] if target is not None else _expand(project, str(ref), ids)
        except MrlError as e:
            if skipped is None:
                raise
            problems.append((str(ref), str(e)))
            continue
        if target is not None and target[1] != ALL:
            parts.setdefault(target[0].id, []).append(target[1])
        else:
            whole.update(exp.id for exp in found)
        for exp in found:
            chosen.setdefault(exp.id, exp)
    if everything or tags:
        for exp in project.experiments():
            if not (exp.dir / RECORD).is_file():
                continue  # being created by a concurrent `mrl new`
            if everything or set(tags) & set(_tags_or_none(exp, skipped)):
                chosen.setdefault(exp.id, exp)
                whole.add(exp.id)
    if subs is not None:
        subs.update({i: ",".join(specs) for i, specs in parts.items() if i not in whole})
    if tags and not everything and not chosen and not problems:
        raise MrlError(f"no experiment is tagged {', '.join(tags)}: see `mrl ls` (tag one with `mrl tag EXP +NAME`)")
    out = [chosen[i] for i in sorted(chosen)]
    if skipped is None:
        return out
    readable = []
    for exp in out:
        why = unreadable(exp)
        if why is None:
            readable.append(exp)
        else:
            problems.append((exp.name, why))
    problems = list(dict.fromkeys(problems))  # `mrl table 9 9`: said once
    if problems and not readable:
        if len(problems) == 1:
            raise MrlError(problems[0][1])  # the one experiment asked for: its error is the answer
        raise MrlError("none of the experiments asked for can be read: " + "; ".join(f"{a}: {w}" for a, w in problems))
    skipped.extend(f"left out experiment {asked}: {why}" for asked, why in problems)
    return readable


def _tags_or_none(exp: Experiment, skipped: list[str] | None) -> list[str]:
    """Its tags; for `--tag` over a project, an unreadable record has none (`--all` reports it)."""
    try:
        return experiment_tags(exp)
    except (MrlError, OSError):
        if skipped is None:
            raise
        return []


def unreadable(exp: Experiment) -> str | None:
    """Why `exp` cannot be tabulated or reported (its record or `EXPDIR/.mrl.cfg`), or None."""
    try:
        exp.record  # noqa: B018 (read now: a corrupt one raises here, not halfway through a command)
        exp.cfg  # noqa: B018
    except MrlError as e:
        return str(e)
    except OSError as e:  # EACCES, EIO, a record replaced by a folder
        return f"cannot read {e.filename or exp.dir}: {e.strerror or e}"
    return None


def _expand(project: Project, ref: str, ids: list[int]) -> list[Experiment]:
    if ref == ALL:
        return [e for e in project.experiments() if (e.dir / RECORD).is_file()]
    if not (_IDS.match(ref) and ("," in ref or "-" in ref)):
        return [project.load_exp(ref)]
    wanted = parse(ref) or []
    # a folder without its record in a range is an `mrl new` under way (or killed), as for --all
    found = [e for i in ids if _contains(wanted, i) and ((e := project.experiment(i)).dir / RECORD).is_file()]
    if not found:
        raise MrlError(f"no experiment in {ref} (see `mrl ls`)")
    return found


# -- EXP/SUB, sub-experiment folders, the folder you are in -----------------------------------


def resolve_targets(
    project: Project, exp_ref: str | None, spec: str | None, *, command: str = "run", cwd: Path | None = None
) -> tuple[int, str]:
    """(experiment id, selection) for the `[EXP] [SELECTION]` positionals.

    - `EXP/SELECTION` (`2/3`, `2/1-4`, `last/all`) and the path of a sub-experiment folder
      name the experiment and the selection in one argument;
    - no argument: the sub-experiment or experiment the current directory is in, else the
      newest experiment, everything;
    - a lone number is always an experiment; run from inside another experiment, one line
      on stderr says which experiment it acts on.
    """
    cwd = (cwd or Path.cwd()).resolve()
    project.refuse_empty(exp_ref)
    if exp_ref is not None and (pair := split_sub_ref(exp_ref)):
        _one_selection(exp_ref, spec)
        return project.load_exp(pair[0]).id, pair[1]
    if exp_ref is not None and not is_id(exp_ref) and exp_ref != "last":
        return _from_path(project, Path(exp_ref), spec)
    if exp_ref is None:
        if spec is None:
            here_sub = sub_here(project, cwd)
            if here_sub is not None:
                return here_sub
        here_exp = project.experiment_here(cwd)
        return project.load_exp(here_exp.id if here_exp else "last").id, spec or ALL
    exp = project.load_exp(exp_ref)
    here = project.experiment_containing(cwd)
    if here is not None and here.id != exp.id:
        print(
            f"mrl: {command} acts on experiment {exp.name}, not on {here.name} which you are in "
            f"(a lone number is an experiment; `mrl {command} {here.id}/{exp_ref}` names a sub-experiment of "
            f"{here.name})",
            file=sys.stderr,
        )
    return exp.id, spec or ALL


def sub_target(project: Project, ref: str) -> tuple[Experiment, str] | None:
    """(experiment, selection) when `ref` names sub-experiments of one experiment, as
    `resolve_targets` reads them: `EXP/SELECTION` (`2/3`, `2/1-4,7`, `last/all`) or the path
    of a sub-experiment folder; None for anything else (an experiment, a range of them).
    For the commands whose positionals are experiments (`mrl table 2/3 4`, `mrl info 2/3`)."""
    project.refuse_empty(ref)
    if pair := split_sub_ref(ref):
        return project.load_exp(pair[0]), pair[1]
    found = sub_folder(project, ref)
    return (project.load_exp(found[0]), found[1]) if found is not None else None


def sub_here(project: Project, cwd: Path | None = None) -> tuple[int, str] | None:
    """(experiment id, sub-experiment id) of the sub-experiment folder the cwd is in, for a
    command given no EXP (`cd output/0002/003 && mrl table`): it defaults to that one."""
    return _sub_containing(project, (cwd or Path.cwd()).resolve())


def sub_folder(project: Project, ref: str) -> tuple[int, str] | None:
    """(experiment id, sub-experiment id) when `ref` is the path of a sub-experiment folder
    (`output/0002/003`, `.` or `../004` inside one); None for anything else."""
    if split_sub_ref(ref) or is_id(ref) or ref in (ALL, "last"):
        return None
    return _sub_containing(project, Path(ref).resolve(), exact=True)


def _is_selection(text: str) -> bool:
    return text == ALL or bool(_IDS.match(text))


def _one_selection(ref: str, spec: str | None) -> None:
    if spec is not None:
        raise MrlError(f"'{ref}' already names the sub-experiments: drop the extra selection '{spec}'")


def _from_path(project: Project, path: Path, spec: str | None) -> tuple[int, str]:
    """An experiment folder (then `spec` applies) or a sub-experiment folder (then it is
    the selection)."""
    sub = _sub_containing(project, path.resolve(), exact=True)
    if sub is None:
        return project.load_exp(str(path)).id, spec or ALL
    _one_selection(str(path), spec)
    return sub


def _sub_containing(project: Project, path: Path, *, exact: bool = False) -> tuple[int, str] | None:
    """(experiment id, sub-experiment id) of the sub-experiment folder `path` is (or is in)."""
    exp = project.experiment_containing(path)
    if exp is None:
        return None
    rel = path.relative_to(exp.dir)
    if not rel.parts or (exact and len(rel.parts) != 1):
        return None
    exp = project.load_exp(exp.id)
    if exp.is_single:
        return None
    sub_id = parse_id(rel.parts[0], exp.cfg["subExpFormat"], "subExpId", expId=exp.id)
    if sub_id is None or not (exp.dir / rel.parts[0]).is_dir():
        return None
    return exp.id, str(sub_id)
