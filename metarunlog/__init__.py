"""metarunlog: git-anchored experiment folders, hyperparameter batches, runs and reports.

The notebook API (`load_table`, `load_results`, `load_metrics`, `load_params`,
`load_experiment`) lives in `metarunlog.api` and is re-exported here lazily, so that
`import metarunlog` (and `mrl ls`) stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "2.0.0"

_API = ("load_table", "load_results", "load_metrics", "load_params", "load_experiment")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from metarunlog import api

        return getattr(api, name)
    raise AttributeError(f"module 'metarunlog' has no attribute {name!r}")
