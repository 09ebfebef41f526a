"""The Python API for notebooks and scripts: an experiment's results as pandas DataFrames.

    import metarunlog.api as mrl
    df = mrl.load_table()                  # the newest experiment of the project you are in
    df = mrl.load_table(3, basedir="~/proj", all_params=True)
    curves = mrl.load_metrics(3)           # every metrics.jsonl line, one row each
    curves[curves.id == "002"].plot(x="step", y="loss")

`exp` is what `mrl` accepts: an id (`3`, `"0003"`), `"last"`, or an experiment folder's
path. `basedir` is the project's top-level folder (default: found from the current
directory, or from `exp` when it is a path). Nothing here writes anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from metarunlog import results
from metarunlog.experiment import Experiment
from metarunlog.project import Project, find_basedir

__all__ = ["load_experiment", "load_table", "load_params", "load_metrics", "load_results"]


def _project(exp: Any, basedir: str | os.PathLike[str] | None) -> Project:
    if basedir is not None:
        return Project.find(Path(basedir).expanduser())
    if isinstance(exp, (str, os.PathLike)) and not str(exp).isdigit() and str(exp) != "last":
        found = find_basedir(Path(exp).expanduser().resolve())
        if found is not None:
            return Project(found)
    return Project.find()


def load_experiment(
    exp: int | str | os.PathLike[str] = "last", basedir: str | os.PathLike[str] | None = None
) -> Experiment:
    """The Experiment named by `exp` (see the module docstring)."""
    project = _project(exp, basedir)
    ref = str(Path(exp).expanduser().resolve()) if isinstance(exp, os.PathLike) else exp
    return project.load_exp(ref if not isinstance(ref, int) else str(ref))


def load_table(
    exp: int | str | os.PathLike[str] = "last",
    basedir: str | os.PathLike[str] | None = None,
    all_params: bool = False,
) -> Any:
    """The `mrl table` of an experiment as a pandas DataFrame indexed by sub-experiment id.

    Columns: the params that vary (every param with `all_params`), `state`, `duration`
    (seconds), then the metrics (metrics.json, else the last value of each key of
    metrics.jsonl, plus the user's `metrics(subExpDir)` from mrl_analyze.py). A user
    metrics() that fails raises MrlError; use `load_results` to get the errors instead.
    """
    tab = load_results(exp, basedir, all_params=all_params)
    if tab.errors:
        from metarunlog.errors import MrlError

        more = f" (and {len(tab.errors) - 3} more)" if len(tab.errors) > 3 else ""
        raise MrlError("; ".join(tab.errors[:3]) + more)
    return tab.to_dataframe()


def load_results(
    exp: int | str | os.PathLike[str] = "last",
    basedir: str | os.PathLike[str] | None = None,
    all_params: bool = False,
) -> results.Table:
    """The table as a `metarunlog.results.Table`: `.rows` (dicts), `.columns`, `.errors`."""
    experiment = load_experiment(exp, basedir)
    return results.table(experiment, all_params=all_params, basedir=_basedir_of(experiment, basedir))


def load_params(exp: int | str | os.PathLike[str] = "last", basedir: str | os.PathLike[str] | None = None) -> Any:
    """Every param of every sub-experiment: the `Dparams` analysis functions receive."""
    experiment = load_experiment(exp, basedir)
    return results.params_frame([results.read_sub(s)[0] for s in experiment.sub_experiments()])


def load_metrics(
    exp: int | str | os.PathLike[str] = "last",
    basedir: str | os.PathLike[str] | None = None,
    with_params: bool = False,
) -> Any:
    """Every line of every sub-experiment's metrics.jsonl as a DataFrame row.

    Columns: `id` (sub-experiment), `line` (0, 1, ... within its file), then the keys the
    lines hold (`step`, `loss`, ...). With `with_params`, the params that vary are added
    as columns too, ready for `groupby`.
    """
    import pandas as pd

    experiment = load_experiment(exp, basedir)
    subs = [results.read_sub(s, keep_lines=True)[0] for s in experiment.sub_experiments()]
    frames = [pd.DataFrame(s.lines).assign(id=s.name, line=range(len(s.lines))) for s in subs if s.lines]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["id", "line"])
    if with_params:
        varying = results.varying_params(subs)
        by_name = {s.name: s.params for s in subs}
        for p in varying:
            df[p] = [by_name[i].get(p) for i in df["id"]]
    first = ["id", "line"] + (results.varying_params(subs) if with_params else [])
    return df[first + [c for c in df.columns if c not in first]]


def _basedir_of(experiment: Experiment, basedir: str | os.PathLike[str] | None) -> Path:
    return Path(basedir).expanduser().resolve() if basedir is not None else results.project_basedir(experiment)
