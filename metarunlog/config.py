""".mrl.cfg: defaults, loading, validation and per-experiment overrides.

The basedir's `.mrl.cfg` is JSON with the original metarunlog keys plus a `run` block.
An experiment may carry its own `EXPDIR/.mrl.cfg` whose keys override the basedir's for
commands on that experiment (dicts such as `run` and `run.slurm` are merged key by key).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from metarunlog import plugins
from metarunlog.backends import registry
from metarunlog.errors import ConfigError, text_problem

CFG_NAME = ".mrl.cfg"
# Warnings go to this logger (and to Config.warnings), never straight to stderr: `mrl` prints
# them as `mrl: warning: ...`; a notebook is quiet unless it configures logging.
log = logging.getLogger("metarunlog.config")
logging.getLogger("metarunlog").addHandler(logging.NullHandler())

# Each backend's own block, run.<backend> (run.slurm), is declared in backends/registry.py.
RUN_DEFAULTS: dict[str, Any] = {
    "command": None,
    "backend": registry.DEFAULT,
    "jobs": 1,
    "resources": [],
    "retries": 0,
    "fail_fast": False,
    "log_tail": 20,
    "heartbeat": 30,
    "stale_after": 600,
    "after": None,
}
DEFAULT_HEARTBEAT_S = 30.0  # run.heartbeat: how often a runner refreshes its live records

# `mrl analyze`: which metric the summary, effects and heatmap rank runs by (null: the
# first metric found with a goal), and which param colours the curves (null: the most informative).
REPORT_DEFAULTS: dict[str, Any] = {
    "primary_metric": None,
    "color_by": None,
}

DEFAULTS: dict[str, Any] = {
    "name": "",
    "outdir": "output",
    "singleExpFormat": "{expId:04d}",
    "subExpFormat": "{subExpId:03d}",
    "gitFailUntrackedDefault": "no",
    "copyFiles": [],
    "confTemplFile": None,
    "analysis_overview": {},
    "analysis_subexp": {},
    "analysis_outdir": "analysis",
    "analysis_outfn": "index.html",
    "analysis_webdir": None,
    "hooks": {},
    "plugins": [],
    "note_fn": ".mrl.note",
    "snapshot": "auto",
    "run": RUN_DEFAULTS,
    "metrics": {},
    "metric_goals": {},
    "repeat_axes": [],
    "report": REPORT_DEFAULTS,
}

_STR, _INT, _BOOL, _NONE, _LIST, _DICT = str, int, bool, type(None), list, dict
# Allowed JSON types per key; nested dicts are checked with their own table.
TYPES: dict[str, tuple[type, ...]] = {
    "name": (_STR,),
    "outdir": (_STR,),
    "singleExpFormat": (_STR,),
    "subExpFormat": (_STR,),
    "gitFailUntrackedDefault": (_STR,),
    "copyFiles": (_LIST,),
    "confTemplFile": (_STR, _LIST, _NONE),
    "analysis_overview": (_DICT,),
    "analysis_subexp": (_DICT,),
    "analysis_outdir": (_STR,),
    "analysis_outfn": (_STR,),
    "analysis_webdir": (_STR, _NONE),
    "hooks": (_DICT,),
    "plugins": (_LIST,),
    "note_fn": (_STR,),
    "snapshot": (_STR,),
    "run": (_DICT,),
    "report": (_DICT,),
    # Not used by mrl (not a default either): the original's default config has it, and its
    # example after_new hook reads cfg.giturl.
    "giturl": (_STR, _NONE),
    "metrics": (_DICT,),  # checked by metarunlog.metrics.settings
    "metric_goals": (_DICT,),
    "repeat_axes": (_LIST,),
}
RUN_TYPES: dict[str, tuple[type, ...]] = {
    "command": (_STR, _LIST, _NONE),
    "backend": (_STR,),
    "jobs": (_INT,),
    "resources": (_LIST,),
    "retries": (_INT,),
    "fail_fast": (_BOOL,),
    "log_tail": (_INT,),
    "heartbeat": (_INT, float),
    "stale_after": (_INT, float),
    "after": (_STR, _LIST, _NONE),
}
REPORT_TYPES: dict[str, tuple[type, ...]] = {
    "primary_metric": (_STR, _NONE),
    "color_by": (_STR, _NONE),
}
# Counts that make no sense below a bound (`run.jobs: 0` would silently run one at a time).
_MINIMUM = {"run.jobs": 1, "run.retries": 0, "run.log_tail": 0}
_POSITIVE = frozenset({"run.heartbeat", "run.stale_after"})  # seconds
_CHOICES = {  # run.backend: checked by backends/registry.spec when a command needs it
    "gitFailUntrackedDefault": ("yes", "no"),
    "snapshot": ("copy", "link", "auto"),
}


class Config(Mapping[str, Any]):
    """The effective configuration: a read-only mapping that also answers `cfg.key`.

    Hook files written for the original metarunlog read `cfg.name`, `cfg.confTemplFile`...
    """

    def __init__(self, data: dict[str, Any], path: Path | None = None, warnings: list[str] | None = None) -> None:
        self._data = data
        self.path = path
        self.warnings = list(warnings or [])  # what loading found questionable (unknown keys)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def run(self) -> dict[str, Any]:
        return self._data["run"]  # type: ignore[no-any-return]

    def template_files(self) -> list[str]:
        """confTemplFile as a list (it may be one name, a list, or unset)."""
        t = self._data.get("confTemplFile")
        if not t:
            return []
        return [t] if isinstance(t, str) else list(t)

    def with_overrides(
        self, overrides: dict[str, Any], path: Path | None = None, warnings: list[str] | None = None
    ) -> Config:
        return Config(
            merge(self._data, overrides, whole=REPLACED_WHOLE), path or self.path, self.warnings + list(warnings or [])
        )


# Tables of the user's functions (name -> extra args): an experiment's own EXPDIR/.mrl.cfg
# replaces them whole, as the original (which set each of its keys on `cfg`) did, so
# `"analysis_subexp": {}` there turns the project's per-run functions off for it.
REPLACED_WHOLE = frozenset({"analysis_overview", "analysis_subexp"})


def merge(base: dict[str, Any], over: Mapping[str, Any], whole: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Deep-merge `over` onto a copy of `base` (dicts merge, everything else replaces, and so
    do the top-level keys in `whole`)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in whole:
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def default_config(name: str, outdir: str) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULTS)
    data["name"] = name
    data["outdir"] = outdir
    data["run"].update({spec.name: spec.defaults() for spec in registry.specs() if spec.settings})
    return data


def _run_types() -> dict[str, tuple[type, ...]]:
    return {**RUN_TYPES, **{spec.name: (_DICT,) for spec in registry.specs() if spec.settings}}


def read_cfg_file(path: Path) -> dict[str, Any]:
    from metarunlog import jsonio
    from metarunlog.errors import RecordTooLarge

    try:
        raw = jsonio.read_bytes(path, jsonio.RECORD_MAX)  # bounded: a huge file is named, not read
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    except RecordTooLarge as e:
        limit = jsonio.RECORD_MAX >> 20
        raise ConfigError(
            f"{path} is {e.size:,} bytes, over the {limit} MiB a config can be: fix or replace it"
        ) from None
    text = _utf8(raw, path)
    # Whole-line `//` comments are allowed (see .mrl.cfg.example); blanking them keeps
    # the line numbers of JSON errors right.
    text = "\n".join("" if line.lstrip().startswith("//") else line for line in text.split("\n"))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: line {e.lineno} column {e.colno}: {e.msg} (it must be JSON)") from e
    except RecursionError:  # json's parser stops at ~1,000 levels of [ or {
        raise ConfigError(f"{path}: nested too deep to read (it must be a JSON object of settings)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object {{...}}, not {type(data).__name__}")
    for key, value in _strings(data, ""):
        if problem := text_problem(value, path_bytes=True):
            raise ConfigError(f"{path}: {key}: {repr(value)[:60]} {problem}: use UTF-8 text without NUL characters")
    return data


def _utf8(raw: bytes, path: Path) -> str:
    """The file's text; a ConfigError naming the line when it is not UTF-8 (an editor that
    saved it as latin-1: "caf\xe9")."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(
            f"{path}: line {line} column {column}: byte 0x{raw[e.start]:02x} is not UTF-8: save the file as UTF-8"
        ) from None


def _strings(value: Any, key: str) -> Iterator[tuple[str, str]]:
    """(dotted key, string) for every string in a JSON value, keys included (json.loads
    takes a "\\ud800" escape, a lone surrogate no file or argument can hold)."""
    if isinstance(value, str):
        yield key or "(top level)", value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k, key)
            yield from _strings(v, f"{key}.{k}" if key else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{key}[{i}]")


def validate(data: Mapping[str, Any], path: Path) -> list[str]:
    """Raise ConfigError for a wrong type; return the warnings (unknown keys)."""
    warnings: list[str] = []
    _check_level(data, TYPES, "", path, warnings)
    run = data.get("run")
    if isinstance(run, dict):
        _check_level(run, {**_run_types(), **_unloaded_backend_block(run)}, "run.", path, warnings)
        _check_heartbeat(run, path)
        for spec in registry.specs():
            if isinstance(run.get(spec.name), dict) and spec.settings:
                _check_backend_block(run[spec.name], spec, path, warnings)
    report = data.get("report")
    if isinstance(report, dict):
        _check_level(report, REPORT_TYPES, "report.", path, warnings)
    _check_formats(data, path)
    _check_paths(data, path)
    if data.get("metrics") or data.get("metric_goals"):
        from metarunlog.metrics.settings import validate as validate_metrics
        from metarunlog.metrics.settings import validate_goals

        warnings += validate_metrics(data.get("metrics") or {}, path)
        validate_goals(data.get("metric_goals") or {}, "metric_goals", path)
    return warnings


def _unloaded_backend_block(run: Mapping[str, Any]) -> dict[str, tuple[type, ...]]:
    """`run.NAME` of a `run.backend` no module registered (a plugin's, while `plugins` does
    not name it): its block is that backend's to check. Only the commands that need the
    backend fail (`registry.spec`, saying to add the module to `plugins`); ls, status,
    table and info still work. While the `plugins` imports wait (`mrl status`, `info`, `ls`:
    `plugins.deferred_imports`), any other unknown `run.NAME` block may be a plugin
    backend's too (`mrl new` pins every registered backend's block): left for the commands
    that import the plugins to check."""
    name = run.get("backend")
    blocks: dict[str, tuple[type, ...]] = {}
    if isinstance(name, str) and name not in registry.names():
        blocks[name] = (_DICT,)
    if plugins.waiting():
        blocks.update({k: (_DICT,) for k, v in run.items() if isinstance(v, dict) and k not in RUN_TYPES})
    return blocks


def _check_heartbeat(run: Mapping[str, Any], path: Path) -> None:
    if "heartbeat" not in run and "stale_after" not in run:
        return
    beat = run.get("heartbeat", RUN_DEFAULTS["heartbeat"])
    stale = run.get("stale_after", RUN_DEFAULTS["stale_after"])
    if stale <= beat:
        raise ConfigError(
            f"{path}: key 'run.stale_after' ({stale}) must be larger than 'run.heartbeat' ({beat}), "
            "or live runs on other machines would look crashed (a few heartbeats: 10 times is usual)"
        )


def _check_backend_block(block: Mapping[str, Any], spec: registry.BackendSpec, path: Path, warnings: list[str]) -> None:
    prefix = f"run.{spec.name}."
    _check_level(block, {k: s.types for k, s in spec.settings.items()}, prefix, path, warnings)
    for key, setting in spec.settings.items():
        if not (setting.check and key in block):
            continue
        with plugins.blamed(f"{path}: the check of '{prefix}{key}'", setting.check):
            problem = setting.check(block[key])
        if problem:
            raise ConfigError(f"{path}: key '{prefix}{key}' {problem}")


def _check_level(
    data: Mapping[str, Any], types: dict[str, tuple[type, ...]], prefix: str, path: Path, warnings: list[str]
) -> None:
    for key, value in data.items():
        full = prefix + key
        if key not in types:
            import difflib  # only for a key that needs a hint: every `mrl ls` loads the config

            near = difflib.get_close_matches(key, list(types), n=1, cutoff=0.5)
            hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            warnings.append(f"{path}: unknown key '{full}'{hint}")
            continue
        allowed = types[key]
        # JSON true/false are bools, which Python also counts as ints: keep them apart.
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and _BOOL not in allowed)
        if not ok:
            want = " or ".join(_json_type_name(t) for t in allowed)
            raise ConfigError(
                f"{path}: key '{full}' must be {want}, not {_json_type_name(type(value))} ({json.dumps(value)[:60]})"
            )
        allowed_values = _choices(full)
        if allowed_values is not None and value not in allowed_values:
            choices = ", ".join(repr(c) for c in allowed_values)
            raise ConfigError(f"{path}: key '{full}' must be one of {choices}, not {value!r}")
        if full in _MINIMUM and isinstance(value, int) and value < _MINIMUM[full]:
            raise ConfigError(f"{path}: key '{full}' must be at least {_MINIMUM[full]}, not {value}")
        if full in _POSITIVE and not (value > 0 and value != float("inf")):
            raise ConfigError(f"{path}: key '{full}' must be a number of seconds above 0, not {value}")


def _choices(key: str) -> tuple[str, ...] | None:
    # run.backend is checked when a command needs the backend (registry.spec): one of a
    # plugin not loaded (yet) must not stop `mrl ls`
    return _CHOICES.get(key)


def _check_formats(data: Mapping[str, Any], path: Path) -> None:
    for key, field in (("singleExpFormat", "expId"), ("subExpFormat", "subExpId")):
        fmt = data.get(key)
        if not isinstance(fmt, str):
            continue
        try:
            fmt.format(**{field: 1, "expId": 1})
        except (KeyError, ValueError, IndexError) as e:
            raise ConfigError(
                f"{path}: key '{key}' must be a format string using {{{field}}}, like '{DEFAULTS[key]}' ({e})"
            ) from e
        if f"{{{field}" not in fmt:
            raise ConfigError(f"{path}: key '{key}' must contain {{{field}}} (like '{DEFAULTS[key]}')")


# Configured paths that must stay inside the experiment (or name one folder of OUTDIR /
# EXPDIR): an absolute path or `..` would make mrl write outside the project.
_INSIDE = {"note_fn": "a file", "analysis_outdir": "a folder", "analysis_outfn": "a file"}
_ONE_FOLDER = ("singleExpFormat", "subExpFormat")
# ... and files mrl writes into a folder it makes: a subfolder of it would not exist (and the
# report's images are beside it, by name)
_ONE_FILE = {"note_fn": "the experiment folder", "analysis_outfn": "analysis_outdir"}


def _check_paths(data: Mapping[str, Any], path: Path) -> None:
    outdir = data.get("outdir")
    if isinstance(outdir, str) and Path(outdir.strip() or ".") == Path("."):
        # "" made `mrl new` put experiments among the project's own files, in git's work tree
        raise ConfigError(
            f"{path}: key 'outdir' ({outdir!r}) must name the folder the experiments go to, like 'output' "
            "(inside the project or an absolute path), not the project folder itself"
        )
    for key, what in _INSIDE.items():
        value = data.get(key)
        if isinstance(value, str) and _leaves(value):
            raise ConfigError(
                f"{path}: key '{key}' ({value!r}) must be {what} inside the experiment folder: a relative "
                f"path without '..' (like '{DEFAULTS[key]}')"
            )
    for key, where in _ONE_FILE.items():
        value = data.get(key)
        if isinstance(value, str) and "/" in value:
            raise ConfigError(
                f"{path}: key '{key}' ({value!r}) must be one file name in {where}, like '{DEFAULTS[key]}' (no '/')"
            )
    for key in _ONE_FOLDER:
        fmt = data.get(key)
        if not isinstance(fmt, str):
            continue
        with contextlib.suppress(KeyError, ValueError, IndexError):  # _check_formats said what is wrong
            name = fmt.format(expId=1, subExpId=1)
            if _leaves(name) or "/" in name or "\\" in name:
                raise ConfigError(
                    f"{path}: key '{key}' ({fmt!r}) must give one folder name inside "
                    f"{'the output folder' if key == 'singleExpFormat' else 'the experiment folder'}, "
                    f"like '{DEFAULTS[key]}' (no '/', no '..')"
                )
    _check_string_lists(data, path)
    resources = (data.get("run") or {}).get("resources") if isinstance(data.get("run"), dict) else None
    if isinstance(resources, list):
        for r in resources:
            if not (isinstance(r, str) and r.strip()) and not (type(r) is int and r >= 0):
                raise ConfigError(
                    f'{path}: key \'run.resources\' entries must be GPU ids or names ("0", 1, "mig-1"), '
                    f"not {json.dumps(r)}"
                )


# Lists whose entries are file names, module names or shell commands: `"copyFiles": [1]`
# passed the type check and was a traceback in makebatch and diff.
# (plugins: import_plugins checks its own)
_STRING_LISTS = {"copyFiles": "file names", "confTemplFile": "file names", "repeat_axes": "param names"}
_RUN_STRING_LISTS = {"command": "commands", "after": "commands"}


def _check_string_lists(data: Mapping[str, Any], path: Path) -> None:
    run = data.get("run")
    levels: list[tuple[str, Mapping[str, Any], dict[str, str]]] = [("", data, _STRING_LISTS)]
    if isinstance(run, dict):
        levels.append(("run.", run, _RUN_STRING_LISTS))
    for prefix, level, keys in levels:
        for key, what in keys.items():
            value = level.get(key)
            if not isinstance(value, list):
                continue
            for entry in value:
                if not isinstance(entry, str):
                    raise ConfigError(
                        f"{path}: key '{prefix}{key}' must be a list of {what} (strings), not one holding "
                        f"{json.dumps(entry)[:60]}"
                    )


def _leaves(rel: str) -> bool:
    p = Path(rel)
    return not rel.strip() or p.is_absolute() or ".." in p.parts or rel.startswith("~")


def _json_type_name(t: type) -> str:
    return {
        str: "a string",
        int: "a whole number",
        bool: "true or false",
        type(None): "null",
        list: "a list",
        dict: "an object {...}",
        float: "a fraction",
    }.get(t, t.__name__)


def load(basedir: Path) -> Config:
    """Load and validate `basedir/.mrl.cfg`, filling defaults for missing keys."""
    path = basedir / CFG_NAME
    data = read_cfg_file(path)
    import_plugins(data.get("plugins"), basedir, path)
    warnings = _logged(validate(data, path))
    merged = merge(default_config(basedir.name, "output"), data)
    return Config(merged, path, warnings)


def import_plugins(modules: Any, basedir: Path, path: Path) -> None:
    """Import each module `plugins` names (once per process), before the config is
    validated: a module registering a backend, a metrics reader or a report section makes
    `run.backend`, `metrics.sources` and the commands know it. The basedir is on sys.path,
    as for mrl_hooks.py, so a module of the project itself works too."""
    if not modules:
        return
    if not isinstance(modules, list) or not all(isinstance(m, str) and m.strip() for m in modules):
        raise ConfigError(f"{path}: 'plugins' must be a list of module names ([\"mypkg.mrl_plugin\"])")
    if not plugins.defer(lambda: _import_plugins(modules, basedir, path)):  # `mrl ls`: when asked
        _import_plugins(modules, basedir, path)


def _import_plugins(modules: list[str], basedir: Path, path: Path) -> None:
    import importlib
    import sys

    if str(basedir) not in sys.path:
        sys.path.insert(0, str(basedir))
    for module in modules:
        with plugins.blamed(f"{path}: 'plugins': importing {module}", module), plugins.prints_to_stderr():
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise ConfigError(f"{path}: 'plugins': cannot import {module} ({e}): install it, or remove it") from e


def run_defaults() -> dict[str, Any]:
    """The `run` block with every default filled in (each backend's own block too)."""
    return default_config("", "")["run"]  # type: ignore[no-any-return]


def with_pinned_run(cfg: Config, pinned: Mapping[str, Any] | None, record: Path) -> Config:
    """`cfg` with the experiment's pinned `run` block (`"run"` in EXPDIR/.mrl, written by
    `mrl new`) in place of the project's: editing the project's .mrl.cfg never changes
    what an existing experiment runs. No pinned block (an experiment made before mrl
    pinned it): `cfg` as it is."""
    if not pinned:
        return cfg
    warnings = _logged(validate({"run": dict(pinned)}, record))
    data = dict(cfg._data)
    data["run"] = merge(run_defaults(), pinned)
    return Config(data, cfg.path, cfg.warnings + warnings)


def load_experiment_overrides(cfg: Config, expdir: Path) -> Config:
    """Apply `EXPDIR/.mrl.cfg`, when it exists, on top of the basedir config."""
    path = expdir / CFG_NAME
    if not path.is_file():
        return cfg
    data = read_cfg_file(path)
    import_plugins(data.get("plugins"), cfg.path.parent if cfg.path else expdir, path)
    return cfg.with_overrides(data, path, _logged(validate(data, path)))


def _logged(warnings: list[str]) -> list[str]:
    for w in warnings:
        log.warning(w)
    return warnings
