"""Expand the experiment's config template into one sub-experiment per combination.

Reads confTemplFile (one file, a list, or none) in EXPDIR, whose `MRL:` lines define the
batch (`grid['lr'] = [0.1, 0.01]`, `grids = [{...}, ...]`, `params = [{...}, ...]`,
`defaults = {...}`, `repeat = N`, `sample = K`, `seed = S`; values are a safe subset of
Python: literals, arithmetic, comprehensions, range, zip, logspace(a, b, n)...), and
writes EXPDIR/<subExpFormat>/ for each combination: .mrl (JSON: subExpId, params), each
template rendered with Jinja (MRL lines removed), and the other copyFiles from EXPDIR.
Template variables: the params, expId, subExpId (the folder name, '001'), subExpNum (its
number), expDir, subExpDir, codeDir, and `params` (all of them as a dict). In
JSON/YAML/TOML templates write {{ name | tojson }} for strings, booleans, None, lists and
dicts: rendered files of these formats are parsed before anything is written. A template
without MRL lines makes one sub-experiment, 001/, as the original did (one-job experiments
an earlier mrl 2.0 rendered into EXPDIR itself stay readable). Adds "batch" to EXPDIR/.mrl.
Everything is checked first: on any error nothing is written.

  mrl makebatch                        expand the last experiment
  mrl makebatch 3 --dry-run            print the combinations, write nothing
  mrl makebatch --set epochs=1 --grid lr=0.1,0.01 --repeat 3
  mrl makebatch --grid lr=0.1,0.01 --grid hidden=16,64   no template needed
  mrl makebatch --extend               add only combinations not made yet (same --set/--grid)
  mrl makebatch -replace               move the old sub-experiments to EXPDIR/.trash/<time>/
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metarunlog import batch as batch_mod
from metarunlog import gone, jsonio, ownership
from metarunlog.batch import BatchSpec, Expansion, Template
from metarunlog.errors import CorruptRecord, MrlError
from metarunlog.experiment import (
    ATTEMPTS,
    CODE,
    DONE_MARK,
    LOG,
    RECORD,
    STATUS,
    TEMPLATE_DIR,
    TRASH,
    Experiment,
    SubExperiment,
    drop_batch_journal,
    write_batch_journal,
)
from metarunlog.locks import is_running
from metarunlog.procs import is_step_of
from metarunlog.project import Project
from metarunlog.records import BatchRecord, ExperimentRecord, Status, SubRecord

HELP = "expand the config template into sub-experiments (grid, params, repeat, sample)"

TMP_PREFIX = ".mrl.batch-tmp-"
RUNNER_CLAIM_WAIT_S = 2.0  # a runner holds the batch lock only while it writes its claim
# What running a one-job experiment leaves in EXPDIR; -replace moves these to .trash too,
# with the files the metrics readers own (see _single_outputs).
SINGLE_OUTPUTS = (STATUS, LOG, DONE_MARK, ATTEMPTS)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expId", nargs="?", metavar="EXP", help="experiment (default: the current or last one)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "-replace",
        "--replace",
        action="store_true",
        help="expand again; the old sub-experiments (with their results) move to EXPDIR/.trash/<time>/",
    )
    mode.add_argument(
        "--extend",
        action="store_true",
        help="add only the combinations that do not exist yet, numbered after the last one",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help=(
            "print the table of combinations; write nothing (an expanded experiment: its template as it "
            "is now, and what -replace, --extend and a plain makebatch would each do)"
        ),
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="fix a param in every combination (a Python literal, else a string)",
    )
    p.add_argument(
        "--grid",
        dest="grids",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=V1,V2",
        help="add or replace a grid axis (values, [v1, v2], or range(...)/logspace(...)/a comprehension)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="make each combination N times, with a 'repeat' param 0..N-1 (replaces MRL:repeat)",
    )


def cli(args: argparse.Namespace, project: Project) -> int:
    res = makebatch(
        project,
        args.expId,
        replace=args.replace,
        extend=args.extend,
        dry_run=args.dry_run,
        sets=args.sets,
        grids=args.grids,
        repeat=args.repeat,
    )
    for w in res.warnings:
        print(f"mrl: warning: {w}", file=sys.stderr)
    print(res.summary())
    if res.dry_run and res.table:
        print(format_table(res.table))
    return 0


# -- the result --------------------------------------------------------------------------


@dataclass
class BatchResult:
    exp: Experiment
    made: list[tuple[int, dict[str, Any]]]  # (subExpId, params) written (or, dry run, planned)
    names: list[str]  # their folder names ("." for a one-job experiment)
    dry_run: bool = False
    kept: int = 0  # existing sub-experiments left as they were (--extend)
    duplicates: int = 0
    trash: Path | None = None
    warnings: list[str] = field(default_factory=list)
    remembered: str = ""  # the batch's own overrides --extend applied again, as options
    # `--dry-run` alone of an expanded experiment: what each real command would do (see _preview)
    preview: str | None = None
    combinations: int = 0  # how many the batch has (--extend: found among the kept ones)

    @property
    def table(self) -> list[tuple[str, dict[str, Any]]]:
        return list(zip(self.names, (p for _, p in self.made), strict=True))

    def summary(self) -> str:
        verb = "would make" if self.dry_run else "made"
        if not self.made:
            what = f"nothing to add: all {self.combinations or self.kept} combinations exist in {self.exp.dir}"
        else:
            span = self.names[0] if len(self.names) == 1 else f"{self.names[0]}..{self.names[-1]}"
            what = f"{verb} {len(self.made)} sub-experiment(s) {span} in {self.exp.dir}"
            if self.kept:
                what += f" (kept the {self.kept} existing)"
        if self.remembered:
            what += f", with the batch's own {self.remembered}"
        if self.trash is not None:
            what += f"; the old ones are in {self.trash}"
        if self.preview is not None:
            what += self.preview
        return what


def format_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """The combinations as an aligned text table: a column per param."""
    keys: list[str] = list(dict.fromkeys(k for _, p in rows for k in p))
    head = ["subexp", *keys]
    body = [[name, *(_cell(p, k) for k in keys)] for name, p in rows]
    from metarunlog.fmt import cell_width, pad

    # widths in terminal cells, so a wide param name or value (最速降下) keeps the columns after it
    widths = [max(cell_width(r[i]) for r in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *body])


def _cell(params: dict[str, Any], key: str) -> str:
    if key not in params:
        return "-"
    v = params[key]
    return v if isinstance(v, str) else repr(v)


# -- planning: everything is read and checked before anything is written -----------------


@dataclass
class Plan:
    exp: Experiment
    spec: BatchSpec
    expansion: Expansion
    compiled: list[Any]  # render.Compiled, one per template
    combos: list[dict[str, Any]]  # the ones to make
    first_id: int
    existing: list[SubExperiment]
    was_single: bool  # an experiment made by mrl 2.0 before the original's 001/ came back
    warnings: list[str]
    overrides: batch_mod.Overrides
    remembered: batch_mod.Overrides  # the batch's own, applied again by --extend
    checkers: list[Any]  # formats.Checker or None, one per template
    sub_ids: list[int] | None = None  # given ids (mrl rerun, reproduce keep the source's)

    def ids(self) -> list[int]:
        if self.sub_ids is not None:
            return list(self.sub_ids)
        return list(range(self.first_id, self.first_id + len(self.combos)))

    def names(self) -> list[str]:
        fmt, exp_id = self.exp.cfg["subExpFormat"], self.exp.id
        return [fmt.format(subExpId=i, expId=exp_id) for i in self.ids()]


def makebatch(
    project: Project,
    exp_ref: str | int | None = None,
    *,
    replace: bool = False,
    extend: bool = False,
    dry_run: bool = False,
    sets: list[str] | tuple[str, ...] = (),
    grids: list[str] | tuple[str, ...] = (),
    repeat: int | None = None,
) -> BatchResult:
    """Expand the experiment's templates into sub-experiments (see the module docstring)."""
    if replace and extend:
        raise MrlError("-replace and --extend exclude each other: choose one")
    overrides = batch_mod.Overrides.parse(sets, grids, repeat)
    if not extend:  # at once, as any bad option; `--extend` keeps the batch's own (checked in _plan)
        batch_mod.check_table_columns(BatchSpec(grid=dict(overrides.grids), sets=dict(overrides.sets)))
    exp = project.load_exp(exp_ref)
    with _batch_lock(exp, clean=not dry_run):
        if dry_run and not (replace or extend) and (exp.is_expanded or exp.sub_experiments()):
            return _preview(exp, overrides)
        plan = _plan(exp, replace=replace, extend=extend, overrides=overrides)
        result = _result(plan, overrides, dry_run, extend)
        tmp = _build(plan, result.names, dry_run)
        if dry_run:
            return result
        try:
            result.trash = _commit(plan, tmp, result.names, replace, extend)
        finally:
            _remove_temp(tmp)
    return result


def _result(plan: Plan, overrides: batch_mod.Overrides, dry_run: bool, extend: bool) -> BatchResult:
    return BatchResult(
        plan.exp,
        list(zip(plan.ids(), plan.combos, strict=True)),
        plan.names(),
        dry_run,
        len(plan.existing) if extend else 0,
        plan.expansion.duplicates,
        combinations=len(plan.expansion.combos),
        warnings=plan.warnings,
        remembered=plan.remembered.left_by(overrides).describe(),
    )


def _preview(exp: Experiment, overrides: batch_mod.Overrides) -> BatchResult:
    """`--dry-run` alone of an expanded experiment: the template as it is now, as `-replace`
    would expand it (or, where -replace would refuse, what `--extend` would add), and what
    each real command would do, in its own words: plain `makebatch` refuses, `-replace` and
    `--extend` make that many or refuse (a sub-experiment running, a param name an older
    batch kept, a one-job experiment). Both refusing is the error of a real run."""
    was_single = exp.is_expanded and exp.is_single
    existing = [] if was_single else exp.sub_experiments()
    refusal = _already_expanded(exp, existing, was_single)
    outcomes: dict[bool, BatchResult | MrlError] = {}
    for extend in (False, True):
        try:
            plan = _plan(exp, replace=not extend, extend=extend, overrides=overrides)
            _build(plan, plan.names(), True)  # renders and checks every file, as the real run
            outcomes[extend] = _result(plan, overrides, True, extend)
        except MrlError as e:
            outcomes[extend] = e
    replaced, extended = outcomes[False], outcomes[True]
    alone = f"; without -replace or --extend, makebatch refuses: {refusal}"
    if isinstance(replaced, BatchResult):
        now = 1 if was_single else len(existing)
        added = f"--extend would add {len(extended.made)}" if isinstance(extended, BatchResult) else ""
        replaced.preview = (
            f", expanding the template as it is now; it has {now} now: -replace would move them to {TRASH}/, "
            + (added or f"--extend would refuse: {extended}")
            + alone
        )
        return replaced
    if isinstance(extended, BatchResult):
        extended.preview = f"; that is what --extend would do (-replace would refuse: {replaced}){alone}"
        return extended
    if str(replaced) == str(extended):
        raise replaced
    raise MrlError(f"-replace would refuse: {replaced}; --extend would refuse: {extended}")


def make_subexperiments(
    project: Project,
    exp_ref: str | int,
    subs: list[tuple[int, dict[str, Any]]],
    remembered: batch_mod.Overrides | None = None,
    repeat: int | None = None,
) -> BatchResult:
    """Sub-experiments with these ids and params in a fresh experiment, its templates (in
    EXPDIR) rendered as makebatch renders them: what `mrl rerun` and `mrl reproduce` make.
    The batch record lists the params (`paramsList`) and `remembered`, the source batch's
    --set/--grid/--repeat: `--extend` later adds what the template's MRL lines under those
    give beyond them (without them, a `--grid` batch would extend to one param-less run);
    `repeat`, the source's MRL:repeat, keeps its `repeat` param a repeat axis."""
    from metarunlog import formats, render

    exp = project.load_exp(exp_ref)
    with _batch_lock(exp):
        _check_state(exp, exp.sub_experiments(), False, False, False)
        templates = [_read_template(exp, name, False) for name in _template_names(exp)]
        compiled = [render.compile_template(t) for t in templates]
        combos = [dict(p) for _, p in subs]
        repeats = repeat is not None and any(batch_mod.REPEAT_KEY in c for c in combos)
        spec = BatchSpec(params=combos, repeat=repeat if repeats else None)
        expansion = Expansion(combos, len(combos), 0)
        plan = Plan(
            exp,
            spec,
            expansion,
            compiled,
            combos,
            1,
            [],
            False,
            _warnings(exp, spec, expansion, compiled),
            remembered or batch_mod.Overrides(),
            batch_mod.Overrides(),
            [formats.checker(c.name) for c in compiled],
            sub_ids=[i for i, _ in subs],
        )
        names = plan.names()
        tmp = _build(plan, names, False)
        try:
            _commit(plan, tmp, names, False, False)
        finally:
            _remove_temp(tmp)
    return BatchResult(exp, list(zip(plan.ids(), combos, strict=True)), names, warnings=plan.warnings)


def _plan(exp: Experiment, *, replace: bool, extend: bool, overrides: batch_mod.Overrides) -> Plan:
    from metarunlog import formats, render

    names = _template_names(exp)
    was_single = exp.is_expanded and exp.is_single
    existing = [] if was_single else exp.sub_experiments()
    _check_state(exp, existing, was_single, replace, extend)
    templates = [_read_template(exp, name, was_single and replace) for name in names]
    old = exp.record.batch
    remembered = batch_mod.Overrides.from_record(old.to_json()) if extend and old else batch_mod.Overrides()
    effective = remembered.under(overrides)
    spec = effective.apply(line for t in templates for line in t.mrl_lines)
    # a batch an older mrl made with a param `id` (a table column's name) extends as it is
    batch_mod.check_table_columns(spec, _param_names(existing) if extend else ())
    expansion = batch_mod.expand(spec)
    compiled = [render.compile_template(t) for t in templates]
    # A template without MRL lines makes one sub-experiment 001/, as at the original's last
    # commit (its launch scripts loop over the sub-experiments); only experiments made by
    # mrl 2.0 before that was restored are one-job experiments (was_single), still read.
    if was_single and extend:
        raise MrlError(f"{exp.dir} is a one-job experiment: use -replace to expand it again")
    warnings = _warnings(exp, spec, expansion, compiled)
    combos, first_id = expansion.combos, 1
    if extend and existing:
        combos, first_id = _new_only(existing, combos, spec.repeat is not None)
    return Plan(
        exp,
        spec,
        expansion,
        compiled,
        combos,
        first_id,
        existing if (replace or extend) else [],
        was_single,
        warnings,
        effective,
        remembered,
        [formats.checker(c.name) for c in compiled],
    )


def _param_names(subs: list[SubExperiment]) -> set[str]:
    """Every param name the sub-experiments have (a record that cannot be read has none)."""
    names: set[str] = set()
    for s in subs:
        with contextlib.suppress(CorruptRecord):
            names.update(s.own_params)
    return names


def _template_names(exp: Experiment) -> list[str]:
    names = exp.cfg.template_files()  # none: a script that takes its params as flags
    where = exp.cfg.path or "the project's .mrl.cfg"
    for name in names:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise MrlError(f"confTemplFile entry '{name}' in {where} must be a path inside the experiment folder")
    return list(dict.fromkeys(names))


def _check_state(exp: Experiment, existing: list[SubExperiment], was_single: bool, replace: bool, extend: bool) -> None:
    if replace or extend:
        ownership.check_not_owned(exp, "-replace" if replace else "--extend")
        if replace:
            _check_not_running(exp, existing, was_single)
        return
    if exp.is_expanded or existing:
        raise MrlError(_already_expanded(exp, existing, was_single))


def _already_expanded(exp: Experiment, existing: list[SubExperiment], was_single: bool) -> str:
    """Why plain `makebatch` refuses an expanded experiment (and what to pass instead)."""
    what = "a one-job experiment" if was_single else f"{len(existing)} sub-experiment(s)"
    return (
        f"{exp.dir} is already expanded ({what}): pass -replace to move the old ones to "
        f"{TRASH}/ and expand again, or --extend to add only new combinations"
    )


def _check_not_running(exp: Experiment, existing: list[SubExperiment], was_single: bool) -> None:
    dirs = [exp.dir] if was_single else [s.dir for s in existing]
    for d in dirs:
        if is_running(d):
            raise MrlError(f"{d} is running: wait for it or stop it with `mrl cancel {exp.id}` before -replace")
        pid = _orphaned_step(d)
        if pid is not None:
            raise MrlError(
                f"{d} is still running (pid {pid}, its runner is gone): wait for it or stop it with "
                f"`mrl cancel {exp.id}` before -replace"
            )


def _orphaned_step(folder: Path) -> int | None:
    """The pid of a step still running in `folder` after its runner was killed with -9: the
    steps never hold the run lock, but the record proves that process (pid and start id), as
    `mrl cancel` proves the step it signals (`procs.is_step_of`)."""
    try:
        data = jsonio.read_json_or(folder / STATUS, None)
    except CorruptRecord:
        return None
    if not isinstance(data, dict):
        return None
    status = Status.from_json(data)
    if status.state.active and status.host == ownership.HOST and is_step_of(status.pid, status.pid_start, folder):
        return status.pid
    return None


def _read_template(exp: Experiment, name: str, from_saved: bool) -> Template:
    """A template's text: EXPDIR/<name>, or the copy a one-job experiment saved."""
    path = exp.dir / name
    if from_saved and (exp.dir / TEMPLATE_DIR / name).is_file():
        _check_rendered_untouched(exp, name)
        path = exp.dir / TEMPLATE_DIR / name
    kind = jsonio.special_kind(path)
    if kind is not None:  # reading a FIFO would wait for a writer for good
        raise MrlError(f"template {path} is a {kind}, not a file: confTemplFile '{name}' must name a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MrlError(
            f"template {path} not found: copy your confTemplFile '{name}' into {exp.dir} "
            "(mrl new copies it from the last experiment or the basedir)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise MrlError(f"cannot read template {path}: {e}") from e
    return batch_mod.split_template(name, text)


def _check_rendered_untouched(exp: Experiment, name: str) -> None:
    """A one-job experiment's rendered file edited by hand would be lost on -replace."""
    batch = exp.record.batch
    want = (batch.rendered or {}).get(name) if batch else None
    path = exp.dir / name
    if want and path.is_file() and _sha(path.read_bytes()) != want:
        raise MrlError(
            f"{path} was edited after makebatch rendered it; its template is "
            f"{exp.dir / TEMPLATE_DIR / name}: make your change there (or move your file there) "
            "and run -replace again"
        )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _warnings(exp: Experiment, spec: BatchSpec, expansion: Expansion, compiled: list[Any]) -> list[str]:
    from metarunlog import render

    out = []
    if expansion.duplicates:
        out.append(f"{expansion.duplicates} duplicate combination(s) made once")
    if expansion.sample_short:
        n = len(expansion.combos) // (spec.repeat or 1)
        out.append(f"sample = {spec.sample}, but there are only {n} distinct combinations: all made")
    used = set().union(*(c.variables for c in compiled))
    command = exp.cfg["run"].get("command")
    used |= render.used_in_strings([command] if isinstance(command, str) else list(command or []))
    # `repeat` labels the runs by design (the script's own randomness differs between them).
    keys = list(dict.fromkeys(k for c in expansion.combos for k in c if k != batch_mod.REPEAT_KEY))
    unused = [] if "params" in used else [k for k in keys if k not in used]
    if unused:
        names = ", ".join(unused)
        out.append(f"param(s) {names} used by no template nor run.command (they only label the runs)")
    return out


def _new_only(
    existing: list[SubExperiment], combos: list[dict[str, Any]], repeats: bool
) -> tuple[list[dict[str, Any]], int]:
    """The combinations no existing sub-experiment has, and the id the first one gets.

    The original metarunlog stored `subExpId` inside params: it is not a param here. When
    the batch now has repeats, a sub-experiment made without them is repeat 0."""
    have = set()
    for s in existing:
        params = s.own_params
        have.add(batch_mod.param_key(params))
        if repeats and batch_mod.REPEAT_KEY not in params:
            have.add(batch_mod.param_key({**params, batch_mod.REPEAT_KEY: 0}))
    new = [c for c in combos if batch_mod.param_key(c) not in have]
    return new, max(s.id for s in existing) + 1


# -- building in a temp folder, then moving into place ------------------------------------


def _build(plan: Plan, names: list[str], dry_run: bool) -> Path:
    """Render everything; unless dry_run, into a fresh temp folder inside EXPDIR (returned)."""
    exp = plan.exp
    if dry_run:
        fixed = exp.template_params()
        for sub_id, combo, name in zip(plan.ids(), plan.combos, names, strict=True):
            _render_all(plan, combo, sub_id, str(exp.dir / name), fixed)
        return exp.dir
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=exp.dir))
    try:
        _write_subexps(plan, tmp, names)
    except BaseException as e:
        _remove_temp(tmp)
        if isinstance(e, OSError):
            raise MrlError(f"cannot write the batch in {exp.dir}: {e}; nothing was changed") from e
        raise
    return tmp


def _render_all(plan: Plan, combo: dict[str, Any], sub_id: int, sub_dir: str, fixed: dict[str, Any]) -> list[str]:
    # `params` too: a name such as model.dropout is only reachable as params['model.dropout']
    # subExpId is the folder name ('001'), as the original rendered it; the number is subExpNum.
    name = plan.exp.subexp_dir(sub_id).name
    ctx = {**combo, **fixed, "subExpId": name, "subExpNum": sub_id, "subExpDir": sub_dir, "params": combo}

    def label() -> str:
        return f"sub-experiment {sub_id} with {batch_mod.param_key(combo)}"

    texts = [c.render(ctx, label) for c in plan.compiled]
    for c, check, text in zip(plan.compiled, plan.checkers, texts, strict=True):
        if check is not None:
            check.check(text, combo, _line_in(c, text), label)
    return texts


def _line_in(compiled: Any, text: str) -> Callable[[int], str]:
    """`rendered line -> "conf.json: line N"` in the template, when rendering kept the lines."""
    body = compiled.source.body

    def where(line: int) -> str:
        if body.count("\n") == text.count("\n"):
            return f"{compiled.name}: line {compiled.source.original_line(line)}"
        return f"{compiled.name}: line {line} of the rendered file"

    return where


def _write_subexps(plan: Plan, tmp: Path, names: list[str]) -> None:
    """Write every sub-experiment under `tmp`. Plain strings and os calls: this loop runs
    once per combination (10,000 is a normal grid)."""
    import json

    exp = plan.exp
    fixed = exp.template_params()
    nested = sorted({os.path.dirname(c.name) for c in plan.compiled} - {""})
    extra = _extra_files(exp, plan)
    outputs = [c.name for c in plan.compiled]
    tmp_s, exp_s, join = str(tmp), str(exp.dir), os.path.join
    for sub_id, combo, name in zip(plan.ids(), plan.combos, names, strict=True):
        d = join(tmp_s, name)
        os.mkdir(d)
        for sub in nested:
            os.makedirs(join(d, sub), exist_ok=True)
        texts = _render_all(plan, combo, sub_id, join(exp_s, name), fixed)
        with open(join(d, RECORD), "w", encoding="utf-8") as f:
            f.write(json.dumps(SubRecord(sub_id, combo).to_json(), indent=2) + "\n")
        for out, text in zip(outputs, texts, strict=True):
            with open(join(d, out), "w", encoding="utf-8") as f:
                f.write(text)
        for src, rel in extra:
            _copy(src, Path(d) / rel)


def _extra_files(exp: Experiment, plan: Plan) -> list[tuple[Path, str]]:
    """copyFiles other than the templates, found in EXPDIR (a missing one: a warning)."""
    templates = {c.name for c in plan.compiled}
    out = []
    for name in exp.cfg["copyFiles"]:
        if name in templates or Path(name).is_absolute() or ".." in Path(name).parts:
            continue
        src = exp.dir / name
        if src.exists():
            out.append((src, name))
        else:
            plan.warnings.append(f"copyFiles: '{name}' not found in {exp.dir}; not copied into the sub-experiments")
    return out


def _copy(src: Path, dst: Path) -> None:
    if dst.parent != dst.parent.parent:
        dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)


def _commit(plan: Plan, tmp: Path, names: list[str], replace: bool, extend: bool) -> Path | None:
    """Move the old batch to .trash (with -replace), the new one into place, write the record.

    Every move is a rename inside EXPDIR; if one fails, the ones done are undone. The
    renames and the record are journaled first (experiment.write_batch_journal): a makebatch
    killed in the middle (kill -9, SIGTERM, a closed terminal) is finished by the next
    command that takes the batch lock, never left half old, half in .trash.
    """
    exp = plan.exp
    done: list[tuple[Path, Path]] = []  # (from, to), made so far
    trash = _trash_dir(exp) if replace and (plan.existing or plan.was_single) else None
    try:
        moves = _old_moves(plan, trash) if trash is not None else []
        _check_free(exp, names, moves)
        moves += [(tmp / name, exp.dir / name) for name in names]
        if extend and plan.combos and (exp.dir / DONE_MARK).exists():
            moves.append((exp.dir / DONE_MARK, tmp / DONE_MARK))  # no longer true: new ones are pending
        record = _record(plan, names, trash, extend)
        write_batch_journal(exp.dir, moves, record.to_json(), tmp)
        for src, dst in moves:
            _move(src, dst, done)
        exp.write_record(record)
        drop_batch_journal(exp.dir)
    except BaseException as e:
        _undo(done)
        drop_batch_journal(exp.dir)
        if trash is not None:
            with contextlib.suppress(OSError):
                trash.rmdir()  # empty again after the undo
        if isinstance(e, OSError):
            raise MrlError(f"cannot put the batch in place in {exp.dir}: {e}; nothing was changed") from e
        raise
    if replace or extend:  # folders a run saw removed: made again now (--extend), or a new batch
        gone.forget(exp)
    return trash


def _trash_dir(exp: Experiment) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = exp.dir / TRASH
    base.mkdir(exist_ok=True)
    for n in range(1000):
        d = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise MrlError(f"cannot make a new folder in {base}: clean it up")


def _old_moves(plan: Plan, trash: Path) -> list[tuple[Path, Path]]:
    """The renames that take the old batch out of the way (into `trash`)."""
    exp = plan.exp
    moves = []
    if plan.was_single:
        rendered = exp.record.batch.templates if exp.record.batch else []
        for name in dict.fromkeys([*rendered, *_single_outputs(exp)]):  # a reader may own a rendered file too
            if (exp.dir / name).exists():
                moves.append((exp.dir / name, trash / name))
        for name in rendered:  # the template goes back where a batch reads it
            saved = exp.dir / TEMPLATE_DIR / name
            if saved.is_file():
                moves.append((saved, exp.dir / name))
        return moves
    moves += [(sub.dir, trash / sub.name) for sub in plan.existing]
    if (exp.dir / DONE_MARK).exists():
        moves.append((exp.dir / DONE_MARK, trash / DONE_MARK))
    return moves


def _single_outputs(exp: Experiment) -> list[str]:
    """SINGLE_OUTPUTS and the top-level entries holding files the metrics readers own."""
    from metarunlog.results import finder_for

    owned = {p.relative_to(exp.dir).parts[0] for p in finder_for(exp).owned(exp.dir)}
    keep = {RECORD, TEMPLATE_DIR, TRASH, CODE}
    return list(dict.fromkeys([*SINGLE_OUTPUTS, *sorted(owned - keep)]))


def _check_free(exp: Experiment, names: list[str], moves: list[tuple[Path, Path]]) -> None:
    present = set(os.listdir(exp.dir)) - {src.name for src, _ in moves if src.parent == exp.dir}
    taken = [n for n in names if n in present]
    if taken:
        raise MrlError(
            f"{exp.dir / taken[0]} already exists and is not a sub-experiment of this batch: move it away and run again"
        )


def _move(src: Path, dst: Path, moves: list[tuple[Path, Path]]) -> None:
    if dst.parent != src.parent:
        dst.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dst)
    moves.append((src, dst))


def _undo(moves: list[tuple[Path, Path]]) -> None:
    for src, dst in reversed(moves):
        with contextlib.suppress(OSError):
            os.rename(dst, src)


def _record(plan: Plan, names: list[str], trash: Path | None, extend: bool) -> ExperimentRecord:
    exp, spec = plan.exp, plan.spec
    old = exp.record.batch if extend else None
    batch = BatchRecord(
        n=len(plan.combos) + (len(plan.existing) if extend else 0),
        templates=[c.name for c in plan.compiled],
        made=jsonio.now(),
        grid=spec.grid,
        params_list=spec.params,  # MRL:params as written
        defaults=spec.defaults,
        grids=spec.grids,
        set=spec.sets,
        repeat=spec.repeat,
        sample=spec.sample,
        seed=_seed(spec),
        duplicates=plan.expansion.duplicates,
        cli=plan.overrides.to_record(),  # --set/--grid/--repeat, applied again by --extend
    )
    if old is not None:
        batch.first_made = old.first_made or old.made
        batch.added = len(plan.combos)
        batch.extra = dict(old.extra)  # keys a newer mrl wrote: the batch goes on (a -replace starts a new one)
    if trash is not None:
        batch.trash = os.path.relpath(trash, exp.dir)
    return dataclasses.replace(exp.record, batch=batch)


def _seed(spec: BatchSpec) -> int | None:
    """The seed a sample used (the default one when the template gave none)."""
    if spec.seed is not None or spec.sample is None:
        return spec.seed
    return batch_mod.DEFAULT_SEED


@contextlib.contextmanager
def _batch_lock(exp: Experiment, clean: bool = True) -> Iterator[None]:
    """One makebatch per experiment at a time (the `ownership.batch_lock`, which a runner
    takes for a moment to claim the experiment); with it held, temp folders left by a
    killed makebatch are ours to remove."""
    busy = f"another mrl makebatch is working on {exp.dir}: wait for it to finish"
    with ownership.batch_lock(exp, wait=RUNNER_CLAIM_WAIT_S, busy=busy):
        exp.__dict__.pop("record", None)  # read again under the lock: a `mrl tag` may have written it since
        for stale in exp.dir.glob(TMP_PREFIX + "*") if clean else []:
            _remove_temp(stale)
        yield


_HELD = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def _remove_temp(tmp: Path) -> None:
    """Remove a temp folder of makebatch whole: SIGINT, SIGTERM and SIGHUP wait until it is
    gone (they end makebatch right after, as they would have). A signal half-way through
    left `.mrl.batch-tmp-*` (and its half-removed files) until the next makebatch."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
