"""The `.mrl.cfg` `metrics` block (and the top-level `metric_goals`): checked, and turned
into `Settings` for the readers.

    "metrics": {
      "sources": ["eval/*.json", {"glob": "logs/*.txt", "reader": "csv"},
                  {"reader": "tensorboard", "enabled": false}, "!log"],
      "patterns": ["epoch (?P<epoch>\\\\d+) .* val_acc=(?P<val_acc>[0-9.]+)"],
      "log_files": ["run.log"],
      "step_keys": ["step", "epoch"],
      "metric_goals": {"val_bpb": "min"}
    },
    "metric_goals": {"*_score": "max"}
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metarunlog import plugins
from metarunlog.errors import ConfigError
from metarunlog.metrics import registry
from metarunlog.metrics.base import DEFAULT_STEP_KEYS, Settings, Source

KEYS = ("sources", "patterns", "log_files", "step_keys", "metric_goals")
GOALS = ("min", "max")


def settings(cfg: Mapping[str, Any] | None) -> Settings:
    """The metrics settings of a (validated) config; defaults for what is unset.

    A reader `metrics.sources` names that no module registered (a plugin's, while `plugins`
    does not name its module) is a ConfigError here, where metrics are read (`mrl table`,
    `analyze`, `diff`, `run`, the API), not when the config is loaded: `ls`, `status`,
    `info` still work (as for a `run.backend` of a plugin)."""
    plugins.load_deferred()  # metrics are read: the readers `plugins` modules register too
    cfg = cfg or {}
    block = dict(cfg.get("metrics") or {})
    sources, off = [], set()
    for i, s in enumerate(block.get("sources", [])):
        _known_reader(s, f"metrics.sources[{i}]", getattr(cfg, "path", None) or Path(".mrl.cfg"))
        if isinstance(s, str) and s.startswith("!"):
            off.add(s[1:])
        elif isinstance(s, str):
            sources.append(Source(s))
        elif s.get("enabled", True) is False:
            off.add(s["reader"])
        else:
            sources.append(Source(s["glob"], s.get("reader")))
    return Settings(
        step_keys=tuple(block.get("step_keys", DEFAULT_STEP_KEYS)),
        sources=tuple(sources),
        off=frozenset(off),
        patterns=tuple(block.get("patterns", ())),
        log_files=tuple(block.get("log_files", ("run.log",))),
        goals={**dict(cfg.get("metric_goals") or {}), **dict(block.get("metric_goals") or {})},
    )


def validate(block: Mapping[str, Any], path: Path, prefix: str = "metrics.") -> list[str]:
    """Raise ConfigError for a bad value in the `metrics` block; return warnings (unknown keys)."""
    warnings = []
    for key in block:
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.5)
            hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            warnings.append(f"{path}: unknown key '{prefix}{key}'{hint}")
    for key in ("patterns", "log_files", "step_keys"):
        _strings(block.get(key, []), f"{prefix}{key}", path)
    for i, s in enumerate(_list(block.get("sources", []), f"{prefix}sources", path)):
        _source(s, f"{prefix}sources[{i}]", path)
    for i, p in enumerate(block.get("patterns", [])):
        _pattern(p, f"{prefix}patterns[{i}]", path)
    validate_goals(block.get("metric_goals", {}), f"{prefix}metric_goals", path)
    return warnings


def validate_goals(goals: Any, where: str, path: Path) -> None:
    if not isinstance(goals, dict):
        raise ConfigError(f'{path}: key \'{where}\' must be an object {{"metric or glob": "min" or "max"}}')
    for name, goal in goals.items():
        if goal not in GOALS:
            raise ConfigError(f'{path}: key \'{where}.{name}\' must be "min" or "max", not {goal!r}')


def _list(value: Any, where: str, path: Path) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: key '{where}' must be a list")
    return value


def _strings(value: Any, where: str, path: Path) -> None:
    if not all(isinstance(v, str) and v for v in _list(value, where, path)):
        raise ConfigError(f"{path}: key '{where}' must be a list of non-empty strings")


_PLUGIN_HINT = ' (a plugin\'s reader: name the module that registers it in "plugins": ["MODULE"])'


def _known_reader(s: Any, where: str, path: Path) -> None:
    known = ", ".join(registry.names())
    if isinstance(s, str) and s.startswith("!") and s[1:] not in registry.names():  # "!tensorboard": off
        raise ConfigError(f"{path}: '{where}': {s!r} names no reader; the readers are: {known}{_PLUGIN_HINT}")
    reader = s.get("reader") if isinstance(s, dict) else None
    if reader is not None and reader not in registry.names():
        raise ConfigError(f"{path}: '{where}': no reader {reader!r}; the readers are: {known}{_PLUGIN_HINT}")


def _source(s: Any, where: str, path: Path) -> None:
    """The shape of one `metrics.sources` entry (the reader's name is checked by `settings`)."""
    if isinstance(s, str) and s:
        return
    form = '"GLOB", {"glob": "GLOB", "reader": "NAME"}, {"reader": "NAME", "enabled": false} or "!NAME"'
    if not isinstance(s, dict) or set(s) - {"glob", "reader", "enabled"}:
        raise ConfigError(f"{path}: '{where}' must be {form}")
    reader = s.get("reader")
    if reader is not None and (not isinstance(reader, str) or not reader):
        raise ConfigError(f"{path}: '{where}': 'reader' must be a reader's name")
    if s.get("enabled", True) is False:
        if reader is None:
            off = '{"reader": "NAME", "enabled": false}'
            raise ConfigError(f"{path}: '{where}': say which reader to turn off: {off}")
        return
    if not isinstance(s.get("glob"), str) or not s["glob"] or not isinstance(s.get("enabled", True), bool):
        raise ConfigError(f"{path}: '{where}' must be {form}")


def _pattern(p: str, where: str, path: Path) -> None:
    try:
        rx = re.compile(p)
    except re.error as e:
        raise ConfigError(f"{path}: '{where}' is not a valid regex: {e} ({p!r})") from e
    if not rx.groupindex:
        raise ConfigError(
            f"{path}: '{where}' has no named group: name what it captures, like (?P<val_acc>[0-9.]+) ({p!r})"
        )
