"""`mrl analyze --notebook`: a Jupyter notebook whose first cells load the experiment's
table and curves through `metarunlog.api`, ready to explore."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from metarunlog import jsonio
from metarunlog.experiment import Experiment

NOTEBOOK_NAME = "analysis.ipynb"


# what markdown (Python-Markdown's and CommonMark's backslash escapes alike) may read as
# syntax; `&<>` are left to html.escape
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def markdown_text(text: str) -> str:
    """`text` as markdown that shows it as typed: HTML escaped, and each mark markdown
    reads as syntax backslash-escaped (`[x](javascript:...)` in a description is no link,
    `![x](URL)` loads nothing)."""
    return html.escape(_MARKDOWN_PUNCTUATION.sub(r"\\\1", text))


def cells(exp: Experiment, basedir: Path) -> list[tuple[str, str]]:
    """(kind, source) of each cell; kind is "markdown" or "code"."""
    desc = exp.record.description
    title = f"# {markdown_text(basedir.name)}: experiment {markdown_text(exp.name)}" + (
        f"\n\n{markdown_text(desc)}" if desc else ""
    )
    load = (
        "import metarunlog.api as mrl\n\n"
        f"EXP, BASEDIR = {exp.id!r}, {str(basedir)!r}\n"
        "table = mrl.load_table(EXP, basedir=BASEDIR)  # one row per sub-experiment\n"
        "table"
    )
    curves = (
        "# every line of every metrics.jsonl, with the params that vary\n"
        "curves = mrl.load_metrics(EXP, basedir=BASEDIR, with_params=True)\n"
        "curves.head()"
    )
    hints = (
        "Ideas:\n\n"
        "- `table.sort_values('val_loss').head()`: the best runs\n"
        "- `table.groupby('lr').mean(numeric_only=True)`: the effect of one param\n"
        "- `curves.pivot_table(index='step', columns='id', values='loss').plot()`: curves "
        "(needs matplotlib)\n"
        "- `mrl.load_params(EXP, basedir=BASEDIR)`: every param (the `Dparams` of mrl_analyze.py)"
    )
    return [("markdown", title), ("code", load), ("code", curves), ("markdown", hints)]


def make(exp: Experiment, basedir: Path) -> Any:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in cells(exp, basedir):
        nb.cells.append(
            nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        )
    nbformat.validate(nb)
    return nb


def write(exp: Experiment, basedir: Path, outdir: Path) -> Path:
    """Write `outdir/analysis.ipynb` (atomically) and return its path."""
    import nbformat

    path = outdir / NOTEBOOK_NAME
    jsonio.write_text(path, nbformat.writes(make(exp, basedir)))
    return path
