"""The backend registry: the one place that names backends.

Each backend is a `BackendSpec`: its name (`--backend NAME`, `run.backend`), where its
class lives (imported only when used, so `mrl status` and `mrl ls` stay light), its
config block `run.<name>` in `.mrl.cfg` (defaults, types, checks: `config.py` validates
and fills it from here) and its `mrl run` options (`commands/run.py` adds them to the
parser; the class's `run_options` turns their values into its own options object).

Adding a backend: write its class (a `metarunlog.backends.base.Backend` subclass) and
`register(BackendSpec(...))` it, here for a built-in one or from your own module.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metarunlog import plugins
from metarunlog.errors import MrlError

if TYPE_CHECKING:
    from metarunlog.backends.base import Backend

__all__ = ["BackendSpec", "RunArg", "Setting", "get_backend", "names", "register", "spec", "specs", "unregister"]


@dataclass(frozen=True)
class Setting:
    """One key of a backend's config block `run.<name>`."""

    default: Any
    types: tuple[type, ...]  # the JSON types allowed (bool is not an int here)
    check: Callable[[Any], str | None] | None = None  # what is wrong with a well-typed value, or None


@dataclass(frozen=True)
class RunArg:
    """One `mrl run` option of a backend, as the arguments of `parser.add_argument`.

    Data, not an argparse call: nothing below `commands/` imports argparse. The value
    reaches the backend's `run_options` under `dest`.
    """

    flags: tuple[str, ...]
    dest: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # help, action, type, metavar, default...


@dataclass(frozen=True)
class BackendSpec:
    """What mrl knows of a backend without importing it."""

    name: str
    target: str  # "package.module:Class"
    settings: Mapping[str, Setting] = field(default_factory=dict)  # run.<name> in .mrl.cfg
    run_args: tuple[RunArg, ...] = ()
    # Its active records are judged on this machine by their pids (a local process);
    # False: its `poll` must be asked (a scheduler).
    liveness: bool = False
    # It schedules jobs of its own after a run (Slurm's run.after job): `mrl status` and
    # `mrl cancel` ask its class (`Backend.follow_ups`); False: they need not import it.
    follow_ups: bool = False
    help: str = ""  # one line for `mrl run --help`

    def defaults(self) -> dict[str, Any]:
        """The config block with every setting at its default (fresh lists and dicts)."""
        import copy

        return {k: copy.deepcopy(s.default) for k, s in self.settings.items()}

    @property
    def module(self) -> str:
        return self.target.split(":")[0]

    def load(self) -> type[Backend]:
        """The backend's class, imported now. A backend from outside mrl that does not
        import, or is no `Backend` subclass, is a user error naming it."""
        from metarunlog.backends.base import Backend

        module, _, cls = self.target.partition(":")
        with plugins.blamed(f"importing the {self.name} backend ({self.target})", module):
            try:
                found = getattr(importlib.import_module(module), cls)
            except (ImportError, AttributeError) as e:
                raise MrlError(f"the {self.name} backend is not available in this mrl ({e})") from e
        if not (isinstance(found, type) and issubclass(found, Backend)):
            raise MrlError(
                f"the {self.name} backend ({self.target}) is not a metarunlog.backends.base.Backend subclass: "
                "subclass it (docs/running.md, For backend authors)"
            )
        return found

    def blamed(self) -> contextlib.AbstractContextManager[None]:
        """Around calls into the backend: from a backend outside mrl, an exception is that
        backend's error (one `mrl: error:` line naming it), not a bug in mrl."""
        return plugins.blamed(f"the {self.name} backend", self.module)


_SPECS: dict[str, BackendSpec] = {}
DEFAULT = "local"  # run.backend's default


def register(spec: BackendSpec) -> BackendSpec:
    """Make `spec` a backend (replacing one of the same name); returns it."""
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _SPECS.pop(name, None)


def names() -> list[str]:
    return list(_SPECS)


def specs() -> list[BackendSpec]:
    return list(_SPECS.values())


def spec(name: str) -> BackendSpec:
    """The registered backend `name`; an unknown one is a user error listing the others."""
    if name not in _SPECS:
        plugins.load_deferred()  # a plugin's, not imported yet (`mrl status` of its records)
    try:
        return _SPECS[name]
    except KeyError:
        raise MrlError(unknown(name)) from None


def unknown(name: str) -> str:
    """What to do about a backend name no module registered."""
    return (
        f"unknown backend {name!r}: use one of {', '.join(names())} (--backend, or run.backend in .mrl.cfg), "
        f'or, for a plugin\'s backend, name the module that registers it in .mrl.cfg "plugins": ["MODULE"]'
    )


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as `name`, imported now."""
    return spec(name).load()


def blamed(name: str) -> contextlib.AbstractContextManager[None]:
    """`spec(name).blamed()`: calls into a backend from outside mrl fail as its error."""
    return spec(name).blamed()


def judged_by_liveness(name: str) -> bool:
    """True when records of backend `name` are checked against their pids on this machine."""
    found = _SPECS.get(name)
    if found is None:  # a plugin's, not imported yet (`mrl status`)
        # one that cannot be imported is asked through `spec` then, which says why
        with contextlib.suppress(MrlError):
            plugins.load_deferred()
        found = _SPECS.get(name)
    return found is not None and found.liveness


# -- the built-in backends ------------------------------------------------------------------------


def _at_least(low: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value is None or value >= low else f"must be at least {low}, not {value}"

    return check


_at_least_one = _at_least(1)
# A wait handed to subprocess (squeue's): its poll counts milliseconds in a C int, so
# Infinity or a month of seconds is an OverflowError there, not a long wait.
MAX_WAIT_S = 86400


def _seconds_from_one(value: Any) -> str | None:
    if value is not None and not value <= MAX_WAIT_S:  # NaN too
        return f"must be at most {MAX_WAIT_S}, not {value}"
    return _at_least_one(value)


_STR, _INT, _NONE, _LIST = str, int, type(None), list

register(
    BackendSpec(
        "local",
        "metarunlog.backends.local:LocalBackend",
        liveness=True,
        help="worker threads on this machine (-j N, --resources)",
    )
)
register(
    BackendSpec(
        "slurm",
        "metarunlog.backends.slurm:SlurmBackend",
        follow_ups=True,
        settings={
            "partition": Setting(None, (_STR, _NONE)),
            "time": Setting(None, (_STR, _INT, _NONE)),
            "mem": Setting(None, (_STR, _INT, _NONE)),
            "cpus_per_task": Setting(None, (_INT, _STR, _NONE)),
            "gpus": Setting(None, (_STR, _INT, _NONE)),
            "account": Setting(None, (_STR, _NONE)),
            "qos": Setting(None, (_STR, _NONE)),
            "max_parallel": Setting(None, (_INT, _NONE), _at_least_one),
            "extra": Setting([], (_LIST,)),
            "pack": Setting(1, (_INT,), _at_least_one),
            "pack_jobs": Setting(None, (_INT, _NONE), _at_least_one),
            "array_limit": Setting(None, (_INT, _NONE), _at_least_one),
            "requeue": Setting(0, (_INT,), _at_least(0)),
            "signal_before": Setting(120, (_INT,), _at_least(1)),
            "unreachable_timeout": Setting(600, (_INT, float), _at_least(0)),
            "query_timeout": Setting(5, (_INT, float), _seconds_from_one),
        },
        run_args=(
            RunArg(
                ("--slurm-opt",),
                "slurm_opt",
                {
                    "action": "append",
                    "default": [],
                    "metavar": "OPT",
                    "help": "slurm: an sbatch option, e.g. --slurm-opt=--mem=8G",
                },
            ),
            RunArg(
                ("--max-parallel",),
                "max_parallel",
                {"type": int, "metavar": "N", "help": "slurm: at most N array tasks at once (%%N)"},
            ),
            RunArg(
                ("--pack",),
                "pack",
                {
                    "type": int,
                    "metavar": "K",
                    "help": "slurm: K sub-experiments per array task (default: run.slurm.pack, 1)",
                },
            ),
            RunArg(
                ("--wait",),
                "wait",
                {
                    "action": "store_true",
                    "help": "slurm: stay until every task and the run.after job end, showing progress, and exit "
                    "like a local run (default: return once submitted)",
                },
            ),
        ),
        help="sbatch job arrays (--slurm-opt, --max-parallel, --pack, --wait)",
    )
)
