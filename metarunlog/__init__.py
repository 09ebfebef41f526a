"""metarunlog: git-anchored experiment folders, hyperparameter batches, runs and reports.

The notebook API (`load_table`, `load_results`, `load_metrics`, `load_params`,
`load_experiment`, and `MrlWarning`, the class of the warnings it raises) lives in
`metarunlog.api` and is re-exported here lazily, so that
`import metarunlog` (and `mrl ls`) stays fast. `metarunlog.html(text)` marks text that
an analysis function returns (a `table` cell) as HTML to render, not escape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markupsafe import Markup

__version__ = "2.0.0"

_API = ("load_table", "load_results", "load_metrics", "load_params", "load_experiment", "MrlWarning")
__all__ = ["__version__", "html", *_API]


def html(text: object) -> Markup:
    """`text` as trusted HTML (markupsafe's Markup): a `table` cell that is one renders as
    HTML in the report, every other cell is escaped. Wrap only what you wrote yourself."""
    from markupsafe import Markup

    return Markup(text)


def __getattr__(name: str) -> Any:
    if name in _API:
        from metarunlog import api

        return getattr(api, name)
    raise AttributeError(f"module 'metarunlog' has no attribute {name!r}")
