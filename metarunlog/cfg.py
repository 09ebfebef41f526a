"""The loaded `.mrl.cfg` as module attributes, for hook files written for the original
metarunlog (`import metarunlog.cfg as cfg; cfg.name, cfg.confTemplFile`).

Filled by `metarunlog.hooks` when a project's config is loaded; new code should use the
`cfg` attribute of the object hooks receive instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _fill(values: Mapping[str, Any]) -> None:
    globals().update(dict(values))
