"""Compare two experiments (`3`) or sub-experiments (`3/2`): what differs in what they ran,
and what they gave.

  mrl diff 3 5            params, pinned code, run block, config files, metrics
  mrl diff 3/2 5/2        two runs (one sub-experiment a side: `mrl table 3/1-4` lists several)
  mrl diff 3 7 --code     also the full `git diff` between the pinned commits, and each .mrl.diff
  mrl diff 3 7 --json     for scripts

Params: the values that differ (for an experiment, the values its sub-experiments take).
Code: the pinned commits, the files changed between them (`git diff --name-status`), and
each side's `.mrl.diff` (--notclean). Run block: the `run` config each runs with, key by
key (pinned in the record, else the `.mrl.cfg` of its code snapshot with EXPDIR/.mrl.cfg
over it). Config files: the config templates of the experiments (the rendered
files of sub-experiments) and `EXPDIR/.mrl.cfg`, with a unified diff of those that
differ. Metrics: every metric both have, last and best value (--summary best) of each and
the delta B - A; for an experiment, the mean of its sub-experiments' last values and the
best value of any of them. Comparing an experiment with a reproduction of it checks it.
Writes nothing.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metarunlog import config, git, jsonio, results
from metarunlog.config import CFG_NAME as CFG_OVERRIDE
from metarunlog.errors import MrlError
from metarunlog.experiment import DIFF, Experiment, SubExperiment, is_id
from metarunlog.fmt import cell_width, format_value, pad
from metarunlog.project import Project
from metarunlog.selection import looks_like_selection

HELP = "what differs between two experiments (3) or sub-experiments (3/2): params, code, run block, configs, metrics"
RESOLVES_EXP = False
MAX_DIFF_LINES = 40  # of each config file's diff in the text output
MAX_RENDERED = 3  # sub-experiments' rendered files shown in the text output (two experiments)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="an experiment (3, last, a path) or a sub-experiment (3/2)")
    p.add_argument("b", metavar="B", help="the other one")
    p.add_argument(
        "--code",
        action="store_true",
        help="also print the full git diff between the pinned commits (and each .mrl.diff)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object (for scripts)")


def cli(args: argparse.Namespace, project: Project) -> int:
    d = diff(project, args.a, args.b, code=args.code)
    d.full = args.code
    sys.stdout.write(json.dumps(d.to_json(), indent=1, default=str) + "\n" if args.json else render(d))
    for err in d.errors:
        print(f"mrl: error: {err}", file=sys.stderr)
    return 1 if d.errors else 0


# -- what is compared ---------------------------------------------------------------------------


@dataclass
class Side:
    """One of the two: an experiment, or one of its sub-experiments."""

    exp: Experiment
    sub: SubExperiment | None
    label: str  # "0003" or "0003/002"

    @property
    def dir(self) -> Path:
        return self.sub.dir if self.sub is not None else self.exp.dir


@dataclass
class Diff:
    a: str
    b: str
    params: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    commits: tuple[str | None, str | None] = (None, None)
    files: list[tuple[str, str]] = field(default_factory=list)  # (status, path) between the commits
    code_note: str | None = None  # why the files could not be listed
    mrl_diffs: tuple[str | None, str | None] = (None, None)  # each side's .mrl.diff text
    run: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)  # file -> unified diff ("" for one side missing)
    rendered: dict[str, str] = field(default_factory=dict)  # "002/conf.json" -> unified diff (two experiments)
    metrics: dict[str, dict[str, tuple[Any, Any, Any]]] = field(default_factory=dict)  # m -> last/best -> a, b, d
    code_text: str | None = None  # --code
    # what could not be read within a side (a sub-experiment's record or metrics): the
    # rest is compared without it, as `mrl table` shows the other rows
    errors: list[str] = field(default_factory=list)

    full: bool = False  # --code: also each differing .mrl.diff in full

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "params": {k: {"a": _j(a), "b": _j(b)} for k, (a, b) in self.params.items()},
            "code": {
                "a": self.commits[0],
                "b": self.commits[1],
                "files": [{"status": s, "path": p} for s, p in self.files],
                "note": self.code_note,
                "mrl_diff": {"a": self.mrl_diffs[0], "b": self.mrl_diffs[1], "same": _same(*self.mrl_diffs)},
                **({"diff": self.code_text} if self.code_text is not None else {}),
            },
            "run": {k: {"a": _j(a), "b": _j(b)} for k, (a, b) in self.run.items()},
            "config_files": self.configs,
            "rendered_files": self.rendered,
            "metrics": {
                m: {kind: {"a": _j(a), "b": _j(b), "delta": _j(d)} for kind, (a, b, d) in parts.items()}
                for m, parts in self.metrics.items()
            },
        }


def _j(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _same(a: str | None, b: str | None) -> bool:
    return (a or "") == (b or "")


def parse_side(project: Project, ref: str) -> Side:
    """`3`, `last`, a path: the experiment; `3/2` or `3/002`, or the path of a sub-experiment
    folder (`.` inside it): its sub-experiment 2."""
    from metarunlog.selection import sub_folder

    if (folder := sub_folder(project, ref)) is not None:
        exp_ref, slash, sub_ref = str(folder[0]), "/", folder[1]
    else:
        exp_ref, slash, sub_ref = ref.rpartition("/") if _looks_like_sub(project, ref) else (ref, "", "")
    exp = project.load_exp(exp_ref)
    if not slash:
        return Side(exp, None, exp.name)
    if looks_like_selection(sub_ref):
        raise MrlError(
            f"{ref}: mrl diff compares one sub-experiment with one other, and {sub_ref!r} is a selection: "
            f"give one on each side (`mrl diff {exp.id}/1 {exp.id}/2`), the experiment itself ({exp.id}: "
            f"its sub-experiments' params and mean metrics), or list them side by side with `mrl table {ref}`"
        )
    subs = exp.sub_experiments()
    for s in subs:
        if sub_ref in (s.name, str(s.id)) or (is_id(sub_ref) and int(sub_ref) == s.id):
            return Side(exp, s, f"{exp.name}/{s.name if s.name != '.' else s.id}")
    raise MrlError(f"{ref}: experiment {exp.name} has no sub-experiment {sub_ref} (see `mrl status {exp.name}`)")


def _looks_like_sub(project: Project, ref: str) -> bool:
    """`3/2`, `last/2`, `output/0003/002`; not the path of an experiment folder."""
    head, _, tail = ref.rpartition("/")
    if not head or not tail:
        return False
    try:
        project.load_exp(ref)
    except MrlError:
        return True
    return False


def diff(project: Project, a_ref: str, b_ref: str, *, code: bool = False) -> Diff:
    """Everything `mrl diff A B` shows, as data."""
    a, b = _both_sides(project, a_ref, b_ref)
    d = Diff(a.label, b.label)
    d.params = _differing(_params(a, d.errors), _params(b, d.errors))
    _code(project, a, b, d, full=code)
    d.run = _differing(_flat("run", _run_block(a.exp)), _flat("run", _run_block(b.exp)))
    d.configs = _configs(a, b)
    d.rendered = _rendered_configs(a, b) if a.sub is None and b.sub is None else {}
    d.metrics = _metrics(project, a, b, d.errors)
    return d


def _both_sides(project: Project, a_ref: str, b_ref: str) -> tuple[Side, Side]:
    """Both sides, their experiment records read: a comparison needs both, so one that
    cannot be read is the error (naming each that cannot), not half a diff."""
    from metarunlog.selection import unreadable

    sides, why = [], []
    for ref in (a_ref, b_ref):
        try:
            side = parse_side(project, ref)
        except MrlError as e:
            why.append(str(e))
            continue
        if (problem := unreadable(side.exp)) is not None:
            why.append(problem)
        sides.append(side)
    if why:
        raise MrlError("; ".join(dict.fromkeys(why)))
    return sides[0], sides[1]


def _params(side: Side, errors: list[str]) -> dict[str, Any]:
    if side.sub is not None:
        return side.sub.own_params
    values: dict[str, list[Any]] = {}
    for s in side.exp.sub_experiments():
        try:
            params = s.own_params
        except MrlError as e:  # one unreadable sub-experiment record: the others' values
            errors.append(str(e))
            continue
        for k, v in params.items():
            seen = values.setdefault(k, [])
            if v not in seen:
                seen.append(v)
    return {k: vs[0] if len(vs) == 1 else sorted(vs, key=results._sort_key) for k, vs in values.items()}


_ABSENT = object()


def _differing(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ (a missing key shows as None), in a's order then b's."""
    out = {}
    for k in dict.fromkeys([*a, *b]):
        va, vb = a.get(k, _ABSENT), b.get(k, _ABSENT)
        if json.dumps(va, sort_keys=True, default=str) != json.dumps(vb, sort_keys=True, default=str):
            out[k] = (None if va is _ABSENT else va, None if vb is _ABSENT else vb)
    return out


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}", v))
        return out
    return {prefix: value}


def _run_block(exp: Experiment) -> Any:
    """The run block the experiment runs with: the one pinned in its record (with
    `EXPDIR/.mrl.cfg` over it); else the `run` of
    the `.mrl.cfg` in its code snapshot (the project's config at the pinned commit), with
    `EXPDIR/.mrl.cfg` over it; else its live config's."""
    if isinstance(exp.record.get("run"), dict):
        return dict(exp.cfg.run)  # the pinned block with EXPDIR/.mrl.cfg over it: what runs
    snapshot = exp.code_dir / (exp.record.code_subdir or "") / CFG_OVERRIDE
    try:
        data = config.read_cfg_file(snapshot)
    except MrlError:
        return dict(exp.cfg.run)
    run = data.get("run")
    block = config.merge(config.run_defaults(), run if isinstance(run, dict) else {})
    if (exp.dir / CFG_OVERRIDE).is_file():
        over = config.read_cfg_file(exp.dir / CFG_OVERRIDE).get("run")
        block = config.merge(block, over if isinstance(over, dict) else {})
    return block


def _code(project: Project, a: Side, b: Side, d: Diff, *, full: bool) -> None:
    ha, hb = a.exp.record.commit, b.exp.record.commit
    d.commits = (ha, hb)
    d.mrl_diffs = (_read(a.exp.dir / DIFF), _read(b.exp.dir / DIFF))
    if not ha or not hb or ha == hb:
        d.code_note = None if ha == hb else "a record has no pinned commit"
        return
    repo = git.toplevel(project.basedir) or project.basedir
    missing = [h for h in (ha, hb) if not git.has_commit(repo, h)]
    if missing:
        d.code_note = f"commit {missing[0][:12]} is not in this repository: cannot list the changed files"
        return
    full_a, full_b = git.rev_parse(repo, ha), git.rev_parse(repo, hb)  # the original wrote abbreviated ones
    if full_a is not None and full_a == full_b:
        d.commits = (full_a, full_b)
        return
    d.files = git.changed_files(repo, ha, hb)
    if full:
        d.code_text = git.diff_text(repo, ha, hb)


def _read(path: Path) -> str | None:
    if jsonio.special_kind(path):  # a FIFO: reading it would wait for a writer
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _config_names(side: Side) -> list[str]:
    batch = side.exp.record.batch
    rendered = list(batch.templates) if batch is not None else []
    names = rendered if side.sub is not None else [*side.exp.cfg.template_files(), *rendered]
    return list(dict.fromkeys([*names, CFG_OVERRIDE]))


def _configs(a: Side, b: Side) -> dict[str, str]:
    out = {}
    for name in dict.fromkeys([*_config_names(a), *_config_names(b)]):
        ta, tb = _read(a.dir / name), _read(b.dir / name)
        if ta == tb:
            continue
        lines = difflib.unified_diff(
            (ta or "").splitlines(keepends=True),
            (tb or "").splitlines(keepends=True),
            f"{a.label}/{name}" if ta is not None else "/dev/null",
            f"{b.label}/{name}" if tb is not None else "/dev/null",
        )
        out[name] = "".join(lines)
    return out


def _rendered_configs(a: Side, b: Side) -> dict[str, str]:
    """Two experiments: the rendered files that differ between sub-experiments with the
    same params, as `002/conf.json` (A's folder). The same params rendered otherwise is
    what a template edited after makebatch (or a hand-edited file) leaves, invisible in
    EXPDIR: a reproduction that is not one."""
    from metarunlog.batch import param_key

    names = list(dict.fromkeys(n for s in (a, b) if s.exp.record.batch for n in s.exp.record.batch.templates))
    if not names:
        return {}

    def keyed(exp: Experiment) -> list[tuple[Any, SubExperiment]]:
        out = []
        for s in exp.sub_experiments():
            try:
                out.append((param_key(s.own_params), s))
            except (MrlError, OSError):  # an unreadable record: the params section names it
                continue
        return out

    subs_b: dict[Any, SubExperiment] = {}
    for key, s in keyed(b.exp):
        subs_b.setdefault(key, s)
    out = {}
    for key, sa in keyed(a.exp):
        sb = subs_b.get(key)
        if sb is None:
            continue
        for name in names:
            ta, tb = _read(sa.dir / name), _read(sb.dir / name)
            if ta == tb or ta is None or tb is None:
                continue
            lines = difflib.unified_diff(
                ta.splitlines(keepends=True),
                tb.splitlines(keepends=True),
                f"{a.label}/{sa.name}/{name}",
                f"{b.label}/{sb.name}/{name}",
            )
            out[f"{sa.name}/{name}"] = "".join(lines)
    return out


def _metrics(project: Project, a: Side, b: Side, errors: list[str]) -> dict[str, dict[str, tuple[Any, Any, Any]]]:
    va, vb = _side_metrics(project, a, errors), _side_metrics(project, b, errors)
    out = {}
    for m in [k for k in va if k in vb]:
        parts = {kind: (va[m][kind], vb[m][kind], _delta(va[m][kind], vb[m][kind])) for kind in ("last", "best")}
        out[m] = parts
    return out


def _side_metrics(project: Project, side: Side, errors: list[str]) -> dict[str, dict[str, Any]]:
    """Per metric: `last` (mean over the sub-experiments for an experiment) and `best`;
    what could not be read (a sub's record, a metrics file) is added to `errors`."""
    # a sub-experiment alone: its neighbours (10,000 of them, each with the user's metrics()) are not read
    only = None if side.sub is None else [side.sub]
    subs, errs = results.collect(side.exp, basedir=project.basedir, only=only)
    errors.extend(e for e in errs if e not in errors)
    out: dict[str, dict[str, Any]] = {}
    for m in results.metric_order(subs):
        lasts = [r.metrics.get(m) for r in subs]
        numeric = [v for v in lasts if results.is_number(v)]
        last = lasts[0] if len(subs) == 1 else (results.mean_std(numeric)[0] if numeric else None)
        bests = [r.best[m] for r in subs if m in r.best]
        best = None
        if bests:
            pick = min if bests[0].goal == "min" else max
            best = pick(b.value for b in bests)
        out[m] = {"last": last, "best": best}
    return out


def _delta(a: Any, b: Any) -> Any:
    """B - A; 0 for the same infinity on both sides (a run that diverged, reproduced alike:
    inf - inf is NaN, which would read as values that cannot be compared)."""
    if not (results.is_number(a) and results.is_number(b)):
        return None
    return 0.0 if a == b and isinstance(a, float) and math.isinf(a) else b - a


# -- text ----------------------------------------------------------------------------------------


def render(d: Diff) -> str:
    lines = [f"mrl diff {d.a} {d.b}"]
    lines += _section("params", [f"  {k}: {_v(a)} -> {_v(b)}" for k, (a, b) in d.params.items()])
    lines += _code_lines(d)
    lines += _section("run block", [f"  {k}: {_v(a)} -> {_v(b)}" for k, (a, b) in d.run.items()])
    config_lines = []
    # When a template differs its diff says why; its sub-experiments' files are then counted.
    templates_differ = any(name != CFG_OVERRIDE for name in d.configs)
    shown = {} if templates_differ else dict(list(d.rendered.items())[:MAX_RENDERED])
    for name, text in {**d.configs, **shown}.items():
        body = text.splitlines()
        config_lines.append(f"  {name} differs")
        config_lines += ["    " + line for line in body[:MAX_DIFF_LINES]]
        if len(body) > MAX_DIFF_LINES:
            config_lines.append(f"    ... {len(body) - MAX_DIFF_LINES} more lines (--json has them all)")
    if templates_differ and d.rendered:
        config_lines.append(
            f"  {len(d.rendered)} rendered file(s) of sub-experiments with the same params differ too "
            "(--json has them all)"
        )
    elif len(d.rendered) > MAX_RENDERED:
        config_lines.append(
            f"  ... {len(d.rendered) - MAX_RENDERED} more sub-experiment files differ (--json has them all)"
        )
    lines += _section("config files", config_lines)
    lines += _metric_lines(d)
    if d.code_text:
        lines += ["", d.code_text.rstrip("\n")]
    if d.full and not _same(*d.mrl_diffs):
        for label, text in zip((d.a, d.b), d.mrl_diffs, strict=True):  # type: ignore[assignment]
            if text:
                lines += ["", f"# {label}/.mrl.diff (uncommitted changes pinned with {label})", text.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _section(title: str, body: list[str]) -> list[str]:
    return [f"{title}: same"] if not body else [f"{title}:", *body]


def _v(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, default=str) if not isinstance(value, str) else repr(value)


def _code_lines(d: Diff) -> list[str]:
    ha, hb = (h[:12] if h else "(none)" for h in d.commits)
    if d.commits[0] == d.commits[1]:
        head = f"code: same commit {ha}"
    else:
        head = f"code: {ha} -> {hb}" + (f", {len(d.files)} file(s) changed" if not d.code_note else f" ({d.code_note})")
    out = [head, *(f"  {s} {p}" for s, p in d.files)]
    ma, mb = d.mrl_diffs
    if ma or mb:
        same = "the same" if _same(ma, mb) else "different"
        out.append(f"  .mrl.diff: {_has(ma)} / {_has(mb)} ({same})")
        if not _same(ma, mb):
            sides = zip((d.a, d.b), d.mrl_diffs, strict=True)
            out += [f"    {label}: {', '.join(_patched(text))}" for label, text in sides if text]
    return out


# git quotes a path holding a newline, a tab, a quote or a backslash (`"a/a\\nb"`); the
# quoted form is kept as git wrote it (escaped: it reaches the terminal)
_PATCH_HEADER = re.compile(
    r'diff --git (?:a/.*?|"a/(?:[^"\\]|\\.)*") (?:b/(?P<plain>.*)|(?P<quoted>"b/(?:[^"\\]|\\.)*"))'
)


def _patched(text: str) -> list[str]:
    """The files a `.mrl.diff` (git diff output) changes."""
    names = []
    for line in text.splitlines():
        header = _PATCH_HEADER.fullmatch(line)
        if header:
            names.append(_patched_name(line, header))
    return names or ["(no file header)"]


def _patched_name(line: str, header: re.Match[str]) -> str:
    if header["quoted"] is not None:
        return '"' + header["quoted"][3:]
    rest = line[len("diff --git ") :]
    same = rest[2 : 2 + (len(rest) - 5) // 2]  # `a/NAME b/NAME`: a NAME holding " b/" too
    return same if rest == f"a/{same} b/{same}" else header["plain"]


def _has(text: str | None) -> str:
    return "none" if not text else f"{text.count(chr(10))} lines"


def _metric_lines(d: Diff) -> list[str]:
    if not d.metrics:
        return ["metrics: none in common"]
    header = ["metric", f"last {d.a}", f"last {d.b}", "delta", f"best {d.a}", f"best {d.b}", "delta"]
    rows = [[m, *(format_value(x) for kind in ("last", "best") for x in parts[kind])] for m, parts in d.metrics.items()]
    widths = [max(cell_width(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = (pad(c, w, right=i > 0) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return ("  " + "  ".join(out)).rstrip()

    return ["metrics (delta = B - A):", *map(line, [header, *rows])]
