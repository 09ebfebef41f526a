"""The Python API for notebooks and scripts: an experiment's results as pandas DataFrames.

    import metarunlog.api as mrl
    df = mrl.load_table()                  # the newest experiment of the project you are in
    df = mrl.load_table(3, basedir="~/proj", all_params=True)
    curves = mrl.load_metrics(3)           # every per-step row (metrics.jsonl, CSV, TensorBoard...)
    curves[curves.id == "002"].plot(x="step", y="loss")

`exp` is what `mrl` accepts: an id (`3`, `"0003"`), `"last"`, or an experiment folder's
path. `basedir` is the project's top-level folder (default: found from the current
directory, or from `exp` when it is a path). Nothing here writes anything. What `mrl` would
print as `mrl: warning: ...` (a sub-experiment folder without `.mrl`) is raised as a
`MrlWarning` (`warnings.warn`), and is in `load_results(...).warnings` too.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union

from metarunlog import results
from metarunlog.errors import MrlError, MrlWarning
from metarunlog.experiment import Experiment, is_id
from metarunlog.project import Project, find_basedir

__all__ = ["load_experiment", "load_table", "load_params", "load_metrics", "load_results", "MrlWarning"]

F = TypeVar("F", bound=Callable[..., Any])


class _Collected(logging.Handler):
    """The warnings the layers below log (`metarunlog.*` loggers) during one API call."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _warns(fn: F) -> F:
    """`fn` with what mrl logs as warnings raised as `MrlWarning`s at its caller: they went to
    the logger only, which a notebook without logging configured never shows. Under the
    command line (an analysis function calling the API) its printer already has them: left
    to it, as in an API call made by another (the outermost call raises them)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logger = logging.getLogger("metarunlog")
        if any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
            return fn(*args, **kwargs)
        handler = _Collected()
        logger.addHandler(handler)
        try:
            out = fn(*args, **kwargs)
            if isinstance(out, results.Table):
                out.warnings.extend(m for m in dict.fromkeys(handler.messages) if m not in out.warnings)
            return out
        finally:
            logger.removeHandler(handler)
            for message in dict.fromkeys(handler.messages):
                warnings.warn(message, MrlWarning, stacklevel=2)

    return wrapper  # type: ignore[return-value]


def _project(exp: Any, basedir: str | os.PathLike[str] | None) -> Project:
    if basedir is not None:
        return Project.find(Path(basedir).expanduser())
    if isinstance(exp, (str, os.PathLike)) and not is_id(str(exp)) and str(exp) != "last":
        found = find_basedir(Path(exp).expanduser().resolve())
        if found is not None:
            return Project(found)
    return Project.find()


@_warns
def load_experiment(
    exp: int | str | os.PathLike[str] = "last", basedir: str | os.PathLike[str] | None = None
) -> Experiment:
    """The Experiment named by `exp` (see the module docstring)."""
    if isinstance(exp, bool) or not isinstance(exp, (int, str, os.PathLike)):  # load_metrics([2, 3])
        raise MrlError(
            f"one experiment is an id, 'last' or a path, not {type(exp).__name__} {exp!r}: "
            "for several, load_table([2, 3]) or one call per experiment"
        )
    project = _project(exp, basedir)
    ref = str(Path(exp).expanduser().resolve()) if isinstance(exp, os.PathLike) else exp
    return project.load_exp(ref if not isinstance(ref, int) else str(ref))


ExpRef = Union[int, str, "os.PathLike[str]"]


@_warns
def load_table(
    exp: ExpRef | Sequence[ExpRef] = "last",
    basedir: str | os.PathLike[str] | None = None,
    all_params: bool = False,
    *,
    summary: str = "last",
    aggregate: bool = False,
    by: str | list[str] | None = None,
    over: str | list[str] | None = None,
    where: str | None = None,
    tag: str | Sequence[str] | None = None,
) -> Any:
    """The `mrl table` of an experiment as a pandas DataFrame indexed by sub-experiment id.

    Columns: the params that vary (every param with `all_params`), `state`, `duration`
    (seconds), then the metrics from every reader (docs/table.md) and the user's
    `metrics(subExpDir)` from mrl_analyze.py (a param named like one of the table's own
    columns, an older batch's `id` or `state`, is the column `param.<name>`, as in `mrl
    table`; `where="param.id == 3"` filters on it). `exp` may also be a list (`[2, 3]`, `"5-9"`
    ranges inside), a range string (`"5-9"`, `"2,3"`) or `"all"`; `tag` adds the
    experiments tagged so (any of a list) to those `exp` names (alone: only those), as `mrl
    table 3 --tag NAME` does; then the DataFrame has an `exp` column first (still indexed by id).
    `"2/3,4"` (or a sub-experiment folder's path, also in a list) keeps only those
    sub-experiments, as `mrl table 2/3,4` does.
    `summary`, `aggregate`/`by`/`over` (a param name or a list) and `where`
    are `mrl table`'s options (an aggregated table has a plain index). A user metrics() that
    fails raises MrlError; use `load_results` to get the errors instead.
    """
    tab = load_results(
        exp, basedir, all_params, summary=summary, aggregate=aggregate, by=by, over=over, where=where, tag=tag
    )
    if tab.errors:
        from metarunlog.errors import MrlError

        more = f" (and {len(tab.errors) - 3} more)" if len(tab.errors) > 3 else ""
        raise MrlError("; ".join(tab.errors[:3]) + more)
    return tab.to_dataframe()


@_warns
def load_results(
    exp: ExpRef | Sequence[ExpRef] = "last",
    basedir: str | os.PathLike[str] | None = None,
    all_params: bool = False,
    *,
    summary: str = "last",
    aggregate: bool = False,
    by: str | list[str] | None = None,
    over: str | list[str] | None = None,
    where: str | None = None,
    tag: str | Sequence[str] | None = None,
) -> results.Table:
    """The table as a `metarunlog.results.Table`: `.rows` (dicts), `.columns`, `.errors`,
    `.warnings`, `.note` (where mrl looked when there are no metrics), `.goal_note` (the
    metrics whose best values are empty for want of a goal). Arguments: `load_table`.
    Of several experiments, one whose record cannot be read is left out and named in
    `.errors` ("left out experiment 0002: ..."); none readable raises MrlError."""
    from metarunlog import selection

    _check_arguments(exp, tag, where, by=by, over=over)
    tags = [tag] if isinstance(tag, str) else list(tag or [])
    several = tags or exp == "all" or (isinstance(exp, Sequence) and not isinstance(exp, str)) or _is_range(exp)
    subs: dict[int, str] = {}  # "2/3,4" (or a sub-experiment folder): only those of experiment 2
    if several:
        refs = [] if exp == "all" or (tags and exp == "last") else _refs(exp)
        project = _project(refs[0] if refs else "last", basedir)
        left_out: list[str] = []  # an experiment whose record cannot be read: the others, and its error
        exps = selection.experiments(
            project, [_ref(r) for r in refs], everything=exp == "all", tags=tags, skipped=left_out, subs=subs
        )
        base: Path = project.basedir
    else:
        target = _sub_target(exp, basedir)
        exps = [target[0] if target else load_experiment(exp, basedir)]  # type: ignore[arg-type]
        if target and target[1] != selection.ALL:
            subs[exps[0].id] = target[1]
        base = _basedir_of(exps[0], basedir)
        left_out = []
    tab = results.build(
        exps,
        all_params=all_params,
        basedir=base,
        summary=summary,
        group=aggregate,
        by=by,
        over=over,
        where_expr=where,
        exp_column=bool(several),
        subs=subs,
    )
    tab.errors[:0] = left_out
    return tab


def _check_arguments(exp: Any, tag: Any, where: Any, **params: Any) -> None:
    """MrlError for an argument of a type `mrl table` could never be given (a TypeError from
    deep inside before, or for `[]` the newest experiment, as if nothing were asked)."""
    from metarunlog.errors import MrlError

    if isinstance(exp, Sequence) and not isinstance(exp, str) and not exp and not tag:
        raise MrlError("exp is an empty list: name at least one experiment ([2, 3], '5-9'), or 'all'")
    for key, value, what in (("tag", tag, "a tag name"), *((k, v, "a param name") for k, v in params.items())):
        names = [value] if isinstance(value, str) else value
        if value is not None and not (isinstance(names, Sequence) and all(isinstance(n, str) for n in names)):
            raise MrlError(f"{key} is {what} or a list of them, not {type(value).__name__} {value!r}")
    if where is not None and not isinstance(where, str):
        raise MrlError(
            f'where is an expression in a string, like "val_loss < 0.3", not {type(where).__name__} {where!r}'
        )


def _sub_target(exp: Any, basedir: str | os.PathLike[str] | None) -> tuple[Experiment, str] | None:
    """(experiment, selection) when `exp` is `"2/3"` or a sub-experiment folder's path."""
    from metarunlog import selection

    if not isinstance(exp, (str, os.PathLike)):
        return None
    return selection.sub_target(_project(exp, basedir), _ref(exp))


def _is_range(exp: Any) -> bool:
    """`"5-9"`, `"2,3"`: several experiments named in one string, as `mrl table 5-9` takes."""
    from metarunlog.selection import _IDS

    return isinstance(exp, str) and ("," in exp or "-" in exp) and bool(_IDS.match(exp))


def _refs(exp: Any) -> list[Any]:
    return [exp] if isinstance(exp, (str, int, os.PathLike)) else list(exp)


def _ref(ref: Any) -> str:
    return str(Path(ref).expanduser().resolve()) if isinstance(ref, os.PathLike) else str(ref)


@_warns
def load_params(exp: int | str | os.PathLike[str] = "last", basedir: str | os.PathLike[str] | None = None) -> Any:
    """Every param of every sub-experiment: the `Dparams` analysis functions receive."""
    experiment = load_experiment(exp, basedir)
    return results.params_frame([results.read_sub(s)[0] for s in experiment.sub_experiments()])


@_warns
def load_metrics(
    exp: int | str | os.PathLike[str] = "last",
    basedir: str | os.PathLike[str] | None = None,
    with_params: bool = False,
) -> Any:
    """Every per-step row of every sub-experiment as a DataFrame row: the lines of
    metrics.jsonl, CSV logs, TensorBoard scalars, run.log pattern matches, and the curve
    the user's `metrics(subExpDir)` returns (docs/table.md).

    Columns: `id` (sub-experiment), `line` (0, 1, ... within its rows), then the keys the
    rows hold (`step`, `loss`, ...). With `with_params`, the params that vary are added
    as columns too, ready for `groupby` (a param named `id` or `line`, of an older batch, as
    `param.<name>`). A key named like one of these columns (a logged `lr` schedule next to
    the param `lr`) is `metric.<name>`, as in `mrl table`.
    """
    import pandas as pd

    experiment = load_experiment(exp, basedir)
    subs, _ = results.collect(experiment, keep_lines=True, basedir=_basedir_of(experiment, basedir))
    params = results.varying_params(subs) if with_params else []
    columns = results.param_columns(params, ["id", "line"])  # an older batch's param `id`: `param.id`
    first = ["id", "line", *columns.values()]
    taken = set(first) | set(params)
    frames = [
        pd.DataFrame(s.lines)
        .rename(columns=lambda k: results.METRIC_PREFIX + k if k in taken else k)
        .assign(id=s.name, line=range(len(s.lines)))
        for s in subs
        if s.lines
    ]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["id", "line"])
    if with_params:
        by_name = {s.name: s.params for s in subs}
        for p, col in columns.items():
            df[col] = [by_name[i].get(p) for i in df["id"]]
    return df[first + [c for c in df.columns if c not in first]]


def _basedir_of(experiment: Experiment, basedir: str | os.PathLike[str] | None) -> Path:
    return Path(basedir).expanduser().resolve() if basedir is not None else results.project_basedir(experiment)
