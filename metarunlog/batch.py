"""MRL lines -> the list of param dicts of a batch. Template text is parsed, never executed.

A template defines its batch with lines like

    -- MRL:grid['lr'] = [0.01, 0.1]
    -- MRL:grid['bs'] = [2**k for k in range(6, 9)]
    -- MRL:params = [{'opt': 'sgd'}, {'opt': 'adam', 'beta': 0.9}]
    -- MRL:defaults = {'epochs': 10}
    -- MRL:grids = [{'norm': ['new', 'batch']}, {'early_stop': [True, False]}]
    -- MRL:repeat = 3
    -- MRL:sample = 20
    -- MRL:seed = 7

behind any comment symbol (`--`, `#`, `//`, `%`, `;`, `<!-- ... -->`, `/* ... */`, or
none). Each line is parsed with `ast`: the target must be `grid['name']` or one of the
other directives, and the value is evaluated by `metarunlog.safe_eval`, a walker of a safe
subset of Python (literals, arithmetic, comprehensions, `range`, `zip`, ...; the original
metarunlog ran these lines with `exec`; this module never does). The lines are removed
from the rendered files.

Combinations: each grid (the `grid[...]` axes, crossed with each of `grids` when given) is
a Cartesian product in declaration order (the first axis varies slowest), crossed with the
params list (each params dict, in order, with every grid point). One combination is
`{**defaults, **params dict, **grid point, **--set values}`. Identical combinations are
made once; `sample` keeps a seeded random subset (a prefix of one seeded permutation of
the combination indices, drawn without building the product, so a larger `sample` keeps
the smaller one's picks); `repeat` makes each combination N times with a `repeat` param.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import json
import math
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metarunlog import safe_eval
from metarunlog.errors import BatchError, text_problem

DIRECTIVES = ("grid", "grids", "params", "defaults", "repeat", "sample", "seed")
REPEAT_KEY = "repeat"
DEFAULT_SEED = 0
# Names every template or run.command sees besides the params: a param may not take one.
# (render.BUILTINS for the templates; execute adds `resource`; `params` is all the params.)
RUN_ONLY = ("resource", "params")
# A batch bigger than this is a typo (a sample of a huge grid is fine: it is never built).
MAX_SUBEXPERIMENTS = 1_000_000
# When most drawn combinations are duplicates, `sample` stops drawing after this many.
MAX_DRAWS = 1_000_000

# Param names: letters, digits, `_`, `.` and `-` (`model.dropout`, `learning-rate`), so
# that they make sense as `--name value` and `name=value` arguments.
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

# Optional indentation, an optional comment opener (punctuation only, at most 4 chars:
# `--`, `#`, `//`, `%`, `;`, `<!--`, `/*`), then `MRL:`. `# see MRL: docs` is not one.
_MRL_RE = re.compile(r"^[ \t]*(?P<open>[^\w\s]{0,4})[ \t]*MRL:(?P<stmt>.*?)[ \t]*\r?$")
# The original took the line's first word, whatever it was, as the comment symbol
# (`line.split(None, 1)[-1]`: `REM MRL:`, `c MRL:`, `dnl MRL:`, `##### MRL:`). Any other
# first word is one here too, but only before a statement shaped like an assignment
# (`name = ...` or `name[...] = ...`), so prose such as `see MRL: docs` stays template
# text, while a typo (`REM MRL:gird['lr'] = ...`) is still an error naming the line.
_WORD_MRL_RE = re.compile(r"^[ \t]*\S+[ \t]+MRL:(?P<stmt>.*?)[ \t]*\r?$")
_ASSIGNMENT_RE = re.compile(r"^[ \t]*[A-Za-z_]\w*[ \t]*(?:\[[^\]]*\][ \t]*)?=(?!=)")
_CLOSERS = {"<!--": "-->", "/*": "*/"}


@dataclass(frozen=True)
class MrlLine:
    """One `MRL:` line: where it is and the statement after `MRL:`."""

    file: str
    lineno: int
    stmt: str

    @property
    def where(self) -> str:
        return f"{self.file}: line {self.lineno}"


@dataclass
class Template:
    """A template's text with its MRL lines removed, and where each kept line came from."""

    name: str
    body: str
    line_map: list[int]  # line_map[i] = original 1-based line number of body line i+1
    mrl_lines: list[MrlLine]

    def original_line(self, body_lineno: int | None) -> int | None:
        if body_lineno is None or not self.line_map:
            return body_lineno
        i = min(max(body_lineno, 1), len(self.line_map)) - 1
        return self.line_map[i]


@dataclass
class BatchSpec:
    """What the MRL lines (and the command line) ask for."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    grids: list[dict[str, list[Any]]] | None = None
    params: list[dict[str, Any]] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    repeat: int | None = None
    sample: int | None = None
    seed: int | None = None
    sets: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # directive -> "file: line N"
    has_lines: bool = False

    @property
    def is_single(self) -> bool:
        """No batch at all: the template renders once into the experiment itself."""
        return not self.has_lines and not self.grid


@dataclass
class Expansion:
    """The combinations to make, in order, and what was dropped on the way."""

    combos: list[dict[str, Any]]
    total: int  # combinations before dropping duplicates and sampling (without repeat)
    duplicates: int  # of those looked at (all of them, or the ones a sample drew)
    sample_short: bool = False  # `sample` asked for more distinct combinations than there are


# -- reading templates ---------------------------------------------------------------


def split_template(name: str, text: str) -> Template:
    """Separate the MRL lines from the rest; the rest is what gets rendered."""
    kept: list[str] = []
    line_map: list[int] = []
    mrl: list[MrlLine] = []
    for n, line in enumerate(text.splitlines(keepends=True), start=1):
        stmt = _mrl_statement(line)
        if stmt is None:
            kept.append(line)
            line_map.append(n)
        else:
            mrl.append(MrlLine(name, n, stmt))
    return Template(name, "".join(kept), line_map, mrl)


def _mrl_statement(line: str) -> str | None:
    if "MRL:" not in line:  # fast path: almost every line
        return None
    line = line.rstrip("\n")
    m = _MRL_RE.match(line)
    if m is None:
        w = _WORD_MRL_RE.match(line)
        return w.group("stmt") if w is not None and _ASSIGNMENT_RE.match(w.group("stmt")) else None
    stmt = m.group("stmt")
    closer = _CLOSERS.get(m.group("open"))
    if closer and stmt.endswith(closer):
        stmt = stmt[: -len(closer)].rstrip()
    return stmt


def parse_spec(
    lines: Iterable[MrlLine], sets: Mapping[str, Any] | None = None, grids: Mapping[str, list[Any]] | None = None
) -> BatchSpec:
    """Read every MRL line into one BatchSpec; a bad or repeated line is a BatchError.

    `sets`/`grids` (from the command line) replace the axes they name as soon as these are
    defined, so that a later line reading `grid['lr']` sees the value that will be used.
    """
    spec = BatchSpec()
    for line in (one for whole in lines for one in _statements(whole)):
        spec.has_lines = True
        kind, key, value = parse_line(line, _names(spec))
        if key is not None and grids and key in grids:
            value = list(grids[key])
        if key is not None and sets and key in sets:
            value = [sets[key]]
        _add(spec, kind, key, value, line)
    return spec


def _statements(line: MrlLine) -> list[MrlLine]:
    """Each statement of an MRL line as a line of its own: the original exec'ed the line, so
    `grid['a'] = [1, 2]; grid['b'] = [3]` set both axes. A line that does not parse as
    several statements is left whole (`_assignment` says what is wrong with it)."""
    if ";" not in line.stmt:
        return [line]
    text = line.stmt.strip()
    try:
        body = ast.parse(text, mode="exec").body
    except (SyntaxError, MemoryError, RecursionError, ValueError):
        return [line]
    if len(body) < 2:
        return [line]
    return [MrlLine(line.file, line.lineno, ast.get_source_segment(text, stmt) or ast.unparse(stmt)) for stmt in body]


def _names(spec: BatchSpec) -> dict[str, Any]:
    """What an MRL line may read: the axes and defaults of the lines above it."""
    return {"grid": dict(spec.grid), "defaults": dict(spec.defaults)}


def parse_line(line: MrlLine, names: Mapping[str, Any] | None = None) -> tuple[str, str | None, Any]:
    """`(directive, grid key or None, value)` for one MRL line, value checked."""
    target, value_node = _assignment(line)
    kind, key = _target(target, line)
    value = _evaluate(value_node, kind, key, line, names or {"grid": {}, "defaults": {}})
    return kind, key, _check_value(kind, key, value, line)


_FORMS = (
    "grid['name'] = [values], grids = [{...}, ...], params = [{...}, ...], defaults = {...}, "
    "repeat = N, sample = K or seed = S"
)
# What the literal form of each directive's value looks like, for the error hints.
_LITERAL_FORM = {
    "grid": "grid['lr'] = [0.1, 0.01]",
    "grids": "grids = [{'lr': [0.1, 0.01]}, {'wd': [0, 1e-4]}]",
    "params": "params = [{'lr': 0.1}, {'lr': 0.01, 'wd': 1e-4}]",
    "defaults": "defaults = {'epochs': 10}",
    "repeat": "repeat = 3",
    "sample": "sample = 20",
    "seed": "seed = 7",
}


def _assignment(line: MrlLine) -> tuple[ast.expr, ast.expr]:
    try:
        tree = ast.parse(line.stmt.strip(), mode="exec")
    except SyntaxError as e:
        raise BatchError(
            f"{line.where}: cannot read MRL line '{_short(line.stmt.strip())}' ({e.msg}); it must be one of: {_FORMS}"
        ) from None
    except (MemoryError, RecursionError):
        raise BatchError(f"{line.where}: MRL line is nested too deep to read") from None
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], ast.Assign) or len(body[0].targets) != 1:
        raise BatchError(
            f"{line.where}: MRL line '{_short(line.stmt.strip())}' is not an assignment; it must be one of: {_FORMS}"
        )
    return body[0].targets[0], body[0].value


def _target(node: ast.expr, line: MrlLine) -> tuple[str, str | None]:
    if isinstance(node, ast.Name):
        if node.id in DIRECTIVES and node.id != "grid":
            return node.id, None
        if node.id == "grid":
            raise BatchError(
                f"{line.where}: write one axis per line: grid['name'] = [values] "
                "(or several grids: grids = [{...}, ...])"
            )
        near = difflib.get_close_matches(node.id, DIRECTIVES, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise BatchError(f"{line.where}: unknown MRL directive '{node.id}'{hint}; use one of: {_FORMS}")
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "grid"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        return "grid", node.slice.value
    raise BatchError(
        f"{line.where}: cannot assign to '{_short(ast.unparse(node))}' in an MRL line; use one of: {_FORMS}"
    )


def _evaluate(node: ast.expr, kind: str, key: str | None, line: MrlLine, names: Mapping[str, Any]) -> Any:
    try:
        return safe_eval.evaluate(node, names)
    except safe_eval.EvalError as e:
        form = _LITERAL_FORM[kind].replace("'lr'", repr(key)) if kind == "grid" else _LITERAL_FORM[kind]
        raise BatchError(
            f"{line.where}: the value '{_short(ast.unparse(node))}' cannot be evaluated: {e}; MRL lines "
            f"are evaluated safely, never run: write the value out, like {form} "
            "(docs/makebatch.md lists what works)"
        ) from None


def _check_value(kind: str, key: str | None, value: Any, line: MrlLine) -> Any:
    where = line.where
    if kind == "grid":
        assert key is not None
        _check_name(key, where)
        return check_axis(key, value, f"{where}: grid['{key}']")
    if kind == "grids":
        return check_grids(value, where)
    if kind == "params":
        return check_params_list(value, where)
    if kind == "defaults":
        return check_param_dict(value, where, "defaults")
    return _check_count(kind, value, where)


def check_axis(key: str, value: Any, what: str) -> list[Any]:
    """One axis' values: a non-empty list (or tuple, range...) of JSON-storable values."""
    if isinstance(value, (set, frozenset)):
        raise BatchError(f"{what} is a set, which has no order: use a list, like sorted({{...}})")
    if not isinstance(value, (list, tuple)):
        raise BatchError(f"{what} must be a list of values, like [0.1, 0.01], not {_short(repr(value))}")
    if not value:
        raise BatchError(f"{what} is empty: give at least one value")
    return [check_json(v, what) for v in value]


def check_grids(value: Any, where: str) -> list[dict[str, list[Any]]]:
    """`grids = [{'a': [1, 2]}, {'b': [3]}]`: a list of grids, each a dict of axes."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(g, dict) for g in value):
        raise BatchError(f"{where}: grids must be a list of dicts of axes, like {_LITERAL_FORM['grids']}")
    if not value:
        raise BatchError(f"{where}: grids is an empty list: give at least one grid")
    out = []
    for n, g in enumerate(value, start=1):
        axes = {}
        for k, v in g.items():
            _check_key(k, where, "grids")
            axes[k] = check_axis(k, v, f"{where}: grids[{n - 1}]['{k}']")
        out.append(axes)
    return out


def check_params_list(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(d, dict) for d in value):
        raise BatchError(f"{where}: params must be a list of dicts, like [{{'lr': 0.1}}, {{'lr': 0.2}}]")
    if not value:
        raise BatchError(f"{where}: params is an empty list: give at least one dict")
    return [check_param_dict(d, where, "params") for d in value]


def check_param_dict(value: Any, where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BatchError(f"{where}: {what} must be a dict of params, like {{'epochs': 10}}")
    for k in value:
        _check_key(k, where, what)
    return {k: check_json(v, f"{where}: {what}['{k}']") for k, v in value.items()}


def _check_key(key: Any, where: str, what: str) -> None:
    if not isinstance(key, str):
        raise BatchError(f"{where}: {what} keys must be strings, not {_short(repr(key))}")
    _check_name(key, where)


def _check_count(kind: str, value: Any, where: str) -> int:
    if kind == "seed":
        if not isinstance(value, int) or isinstance(value, bool):
            raise BatchError(f"{where}: seed must be an integer, not {_short(repr(value))}")
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BatchError(f"{where}: {kind} must be a positive integer, not {_short(repr(value))}")
    return value


# Columns of `mrl table` (and the report) that are no param's: a param of that name was hidden
# by them (`state` showed done, `id` replaced the sub-experiment ids in text and --json). A
# new batch may not have one (`check_table_columns`); one an older mrl made shows them as
# `param.<name>`, and `--extend` keeps them.
TABLE_COLUMNS = ("exp", "id", "state", "duration")


def check_table_columns(spec: BatchSpec, kept: Iterable[str] = ()) -> None:
    """BatchError for a param named like a column `mrl table` makes (`TABLE_COLUMNS`), unless
    `kept` has it: a param the batch being extended already has (made by an earlier mrl or
    the original metarunlog, before this was refused), which an `--extend` must not lose."""
    allowed = set(kept)
    for key, where in _names_and_lines(spec):
        if key in TABLE_COLUMNS and key not in allowed:
            raise BatchError(
                f"{where}: param '{key}' has the name of a column mrl table makes ({', '.join(TABLE_COLUMNS)}): "
                "rename it"
            )


def _names_and_lines(spec: BatchSpec) -> Iterator[tuple[str, str]]:
    """Every param name the spec gives, with where it comes from (`file: line N`, `--set`)."""
    for key in spec.grid:
        yield key, spec.where.get(f"grid['{key}']", "--grid")
    for kind, dicts in (("grids", spec.grids), ("params", spec.params), ("defaults", [spec.defaults])):
        for key in {k: None for d in dicts or [] for k in d}:
            yield key, spec.where.get(kind, "--grid")
    for key in spec.sets:
        yield key, "--set"


def reserved_names() -> tuple[str, ...]:
    """The variable names mrl itself gives templates and run.command: no param may take one."""
    from metarunlog.render import COMMAND_BUILTINS

    return tuple(dict.fromkeys((*COMMAND_BUILTINS, *RUN_ONLY)))


def _check_name(key: str, where: str) -> None:
    if not _NAME_RE.match(key):
        raise BatchError(
            f"{where}: param name '{key}' must start with an ASCII letter (a-z, A-Z) or _ and use only those, digits, "
            "_, . and - (in templates, a name like model.dropout is {{ params['model.dropout'] }})"
        )
    reserved = reserved_names()
    if key in reserved:
        raise BatchError(
            f"{where}: param '{key}' has the name of a variable mrl sets itself ({', '.join(reserved)}): rename it"
        )
    from metarunlog.render import JINJA_NAMES

    if key in JINJA_NAMES:
        raise BatchError(
            f"{where}: param '{key}' has the name of one Jinja gives every template ({', '.join(JINJA_NAMES)}): "
            "in a template it would hide Jinja's or be hidden by it; rename it"
        )


def joined_surrogate_pairs(text: str) -> str:
    """`text` with each surrogate pair made the one character it spells: `"\\ud83d\\udc0d"`,
    as `json.dumps` writes 🐍, is two code points in a grid line evaluated as Python. Lone
    surrogates stay (text_problem refuses them)."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:  # a lone one: pair what pairs
        return re.sub("[\ud800-\udbff][\udc00-\udfff]", lambda m: joined_surrogate_pairs(m.group()), text)


def check_json(value: Any, where: str) -> Any:
    """`value` if it can be stored in a JSON record (tuples become lists), else BatchError."""
    if isinstance(value, str):
        value = joined_surrogate_pairs(value)
        if problem := text_problem(value):
            raise BatchError(f"{where}: {_short(repr(value))} {problem}: use UTF-8 text without NUL characters")
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BatchError(f"{where}: {value!r} cannot be stored in a JSON record")
        return value
    if isinstance(value, (list, tuple)):
        return [check_json(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise BatchError(f"{where}: dict keys must be strings in {_short(repr(value))}")
        return {check_json(k, where): check_json(v, where) for k, v in value.items()}
    raise BatchError(
        f"{where}: {_short(repr(value))} ({type(value).__name__}) cannot be stored in a JSON "
        "record: use numbers, strings, booleans, None, lists or dicts"
    )


def _add(spec: BatchSpec, kind: str, key: str | None, value: Any, line: MrlLine) -> None:
    name = f"grid['{key}']" if kind == "grid" else kind
    if name in spec.where:
        raise BatchError(f"{line.where}: {name} is already set at {spec.where[name]}: keep one")
    spec.where[name] = line.where
    if kind == "grid":
        assert key is not None
        spec.grid[key] = value
    else:
        setattr(spec, kind, value)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# -- the command line: --set KEY=VALUE, --grid KEY=V1,V2 -------------------------------


def parse_value(text: str) -> Any:
    """A Python literal when `text` is one (`0.1`, `'a'`, `[1, 2]`, `True`), else the string."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def _split_kv(item: str, option: str, example: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise BatchError(f"{option} '{item}' must look like {example} (put EXP before {option})")
    _check_name(key, option)
    if key == REPEAT_KEY:
        raise BatchError(
            f"{option} {item}: use --repeat N to run each combination N times (a '{REPEAT_KEY}' param "
            "is what --repeat and MRL:repeat make); name your param differently"
        )
    return key, value


def parse_set(item: str) -> tuple[str, Any]:
    """`--set KEY=VALUE`: the value as a literal, falling back to a string."""
    key, value = _split_kv(item, "--set", "KEY=VALUE")
    return key, check_json(parse_value(value), f"--set {key}")


def parse_grid(item: str) -> tuple[str, list[Any]]:
    """`--grid KEY=V1,V2,...`, `KEY=[V1, V2]`, or an expression such as `KEY=range(3)`,
    `KEY=logspace(-4, -1, 4)`, `KEY=[2**k for k in range(6, 9)]`: the axis values."""
    key, text = _split_kv(item, "--grid", "KEY=V1,V2,...")
    values = _grid_values(key, text)
    if not values:
        raise BatchError(f"--grid {key}: no values: give them as {key}=V1,V2,...")
    return key, check_axis(key, values, f"--grid {key}")


# `--grid` text evaluated as an expression, not split on commas: a list or a call.
_GRID_EXPR = re.compile(r"^\s*(\[|(" + "|".join(("range", "linspace", "logspace", "list", "zip")) + r")\s*\()")


def _grid_values(key: str, text: str) -> list[Any]:
    text = text.strip()
    if not text:
        return []
    whole = parse_value(text)
    if isinstance(whole, list) and text.startswith("["):
        return whole
    if _GRID_EXPR.match(text):
        try:
            value = safe_eval.evaluate(text)
        except safe_eval.EvalError as e:
            raise BatchError(f"--grid {key}: cannot evaluate '{_short(text)}': {e}") from None
        if isinstance(value, tuple):  # `[1, 2], [3]`: the values, as `1,2` is
            return list(value)
        return value if isinstance(value, list) else [value]
    as_list = parse_value(f"[{text}]")
    if isinstance(as_list, list):
        return as_list
    parts = _split_values(text)
    if "" in parts:
        raise BatchError(
            f"--grid {key}={_short(text)}: value {parts.index('') + 1} is empty: remove the extra comma, "
            f"or write '' for an empty string"
        )
    return [parse_value(part) for part in parts]


def _split_values(text: str) -> list[str]:
    """`text` split on its commas, except those inside a value that starts with a quote
    (`'a,b',c` is two values, as in Python) or inside brackets; an apostrophe inside a
    word (`it's`) is just a character."""
    parts, start, depth, quote = [], 0, 0, ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"" and not text[start:i].strip():
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return text.split(",") if quote or depth else parts


@dataclass
class Overrides:
    """What the command line changed: `--set`, `--grid`, `--repeat`. Stored in the batch
    record (`batch.cli`) so that `makebatch --extend` applies them again."""

    sets: dict[str, Any] = field(default_factory=dict)
    grids: dict[str, list[Any]] = field(default_factory=dict)
    repeat: int | None = None

    @classmethod
    def parse(cls, sets: Iterable[str] = (), grids: Iterable[str] = (), repeat: int | None = None) -> Overrides:
        if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1):
            raise BatchError(f"--repeat {repeat}: give a positive number of repeats")
        set_items, grid_items = [parse_set(s) for s in sets], [parse_grid(g) for g in grids]
        for flag, items in (("--set", set_items), ("--grid", grid_items)):
            names = [k for k, _ in items]
            if twice := next((k for k in names if names.count(k) > 1), None):  # the last one silently won
                raise BatchError(f"{flag} {twice}=... is given twice: give it once")
        out = cls(dict(set_items), dict(grid_items), repeat)
        if both := [k for k in out.sets if k in out.grids]:  # the --set silently won
            raise BatchError(
                f"--set {both[0]}=... and --grid {both[0]}=... name the same param: give one of them "
                "(--set fixes one value, --grid sweeps several)"
            )
        return out

    @classmethod
    def from_record(cls, batch: Mapping[str, Any]) -> Overrides:
        """The overrides a batch was made with (before `cli` was recorded: its `set`)."""
        cli = batch.get("cli")
        if not isinstance(cli, dict):
            sets = batch.get("set")
            return cls(dict(sets) if isinstance(sets, dict) else {})
        repeat = cli.get("repeat")
        return cls(dict(cli.get("set") or {}), dict(cli.get("grid") or {}), repeat if isinstance(repeat, int) else None)

    def to_record(self) -> dict[str, Any]:
        return {"set": self.sets, "grid": self.grids, "repeat": self.repeat}

    def under(self, newer: Overrides) -> Overrides:
        """These overrides with `newer` ones on top (a key given again takes the new value,
        also from --set to --grid and back: `--extend --grid lr=0.1,0.01` of a batch made
        with `--set lr=0.1` sweeps lr, where the old --set fixed it again: nothing to add)."""
        kept = self.left_by(newer)
        repeat = newer.repeat if newer.repeat is not None else kept.repeat
        return Overrides({**kept.sets, **newer.sets}, {**kept.grids, **newer.grids}, repeat)

    def left_by(self, newer: Overrides) -> Overrides:
        """Those of these overrides that `newer` does not replace (what `--extend` applies
        again, and says it does)."""
        given = newer.sets.keys() | newer.grids.keys()
        return Overrides(
            {k: v for k, v in self.sets.items() if k not in given},
            {k: v for k, v in self.grids.items() if k not in given},
            self.repeat if newer.repeat is None else None,
        )

    def __bool__(self) -> bool:
        return bool(self.sets or self.grids or self.repeat is not None)

    def describe(self) -> str:
        """As command-line options, for messages: `--set a=1 --grid lr=0.1,0.01 --repeat 3`."""
        parts = [f"--set {k}={_arg(v)}" for k, v in self.sets.items()]
        parts += [f"--grid {k}={','.join(_arg(v) for v in vs)}" for k, vs in self.grids.items()]
        if self.repeat is not None:
            parts.append(f"--repeat {self.repeat}")
        return " ".join(parts)

    def apply(self, lines: Iterable[MrlLine]) -> BatchSpec:
        """The spec of these MRL lines with the overrides applied."""
        spec = parse_spec(lines, self.sets, self.grids)
        return apply_overrides(spec, self.sets, self.grids, self.repeat)


def _arg(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def apply_overrides(
    spec: BatchSpec,
    sets: Sequence[tuple[str, Any]] | Mapping[str, Any] = (),
    grids: Sequence[tuple[str, list[Any]]] | Mapping[str, list[Any]] = (),
    repeat: int | None = None,
) -> BatchSpec:
    """`--grid` adds or replaces an axis (in every one of `grids` that has it, else in the
    common grid); `--set` fixes a param in every combination; `--repeat` replaces MRL:repeat."""
    for key, values in _pairs(grids):
        in_grids = [g for g in spec.grids or [] if key in g]
        for g in in_grids:
            g[key] = list(values)
        if not in_grids:
            spec.grid[key] = list(values)
            spec.where[f"grid['{key}']"] = "--grid"
    for key, value in _pairs(sets):
        spec.sets[key] = value
        for axes in [spec.grid, *(spec.grids or [])]:
            if key in axes:  # a fixed axis, rather than N identical combinations
                axes[key] = [value]
    if repeat is not None:
        spec.repeat = repeat
        spec.where["repeat"] = "--repeat"
    return spec


def _pairs(items: Sequence[tuple[str, Any]] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    return list(items.items()) if isinstance(items, Mapping) else list(items)


# -- combinations ----------------------------------------------------------------------


def param_key(params: dict[str, Any]) -> str:
    """A canonical text for a param dict: equal keys <=> the same combination (1 != 1.0)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


@dataclass
class _Block:
    """One grid crossed with the params list: `len(params) * prod(axis lengths)` combinations."""

    params: list[dict[str, Any]]
    keys: list[str]
    axes: list[list[Any]]
    size: int = 0

    def __post_init__(self) -> None:
        self.size = len(self.params) * math.prod(len(a) for a in self.axes)

    def points(self) -> Iterator[tuple[dict[str, Any], tuple[Any, ...]]]:
        for p in self.params:
            for values in itertools.product(*self.axes):
                yield p, values

    def at(self, i: int) -> tuple[dict[str, Any], list[Any]]:
        """The i-th (params dict, axis values): params outermost, first axis slowest."""
        values = []
        for axis in reversed(self.axes):
            i, r = divmod(i, len(axis))
            values.append(axis[r])
        values.reverse()
        return self.params[i], values


class Space:
    """Every combination of a spec, by index, without building them (mixed-radix)."""

    def __init__(self, spec: BatchSpec) -> None:
        plist = spec.params if spec.params is not None else [{}]
        grids = spec.grids if spec.grids is not None else [{}]
        self.defaults, self.sets = spec.defaults, spec.sets
        self.blocks = []
        for g in grids:
            axes = {**spec.grid, **g}
            self.blocks.append(_Block(plist, list(axes), list(axes.values())))
        self.size = sum(b.size for b in self.blocks)

    def __len__(self) -> int:
        return self.size

    def _combo(self, p: dict[str, Any], keys: list[str], values: Sequence[Any]) -> dict[str, Any]:
        return {**self.defaults, **p, **dict(zip(keys, values, strict=True)), **self.sets}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for b in self.blocks:
            for p, values in b.points():
                yield self._combo(p, b.keys, values)

    def __getitem__(self, i: int) -> dict[str, Any]:
        for b in self.blocks:
            if i < b.size:
                p, values = b.at(i)
                return self._combo(p, b.keys, values)
            i -= b.size
        raise IndexError(i)


def expand(spec: BatchSpec) -> Expansion:
    """The combinations of `spec`, in order, duplicates made once."""
    _check_spec(spec)
    space = Space(spec)
    total = space.size  # len() cannot: a grid of 10**5 values on 5 axes overflows it
    if spec.sample is not None and spec.sample < total:
        _check_size(spec, spec.sample)  # before drawing: a typo (10**8 for 10**3) would draw for minutes
        combos, duplicates, short = sample_space(space, spec.sample, _seed_of(spec))
    else:
        _check_size(spec, total)
        combos = unique(space)
        duplicates = total - len(combos)
        short = spec.sample is not None and spec.sample > len(combos)
    _check_size(spec, len(combos))
    if spec.repeat is not None:
        combos = [{**c, REPEAT_KEY: r} for c in combos for r in range(spec.repeat)]
    return Expansion(combos, total, duplicates, short)


def _seed_of(spec: BatchSpec) -> int:
    return DEFAULT_SEED if spec.seed is None else spec.seed


def _check_spec(spec: BatchSpec) -> None:
    if spec.repeat is not None and (
        REPEAT_KEY in spec.grid or REPEAT_KEY in spec.defaults or _in_params(spec, REPEAT_KEY)
    ):
        raise BatchError(
            f"{spec.where.get('repeat', 'MRL:repeat')}: MRL:repeat adds a '{REPEAT_KEY}' param, "
            f"but the grid or params already define '{REPEAT_KEY}': rename one"
        )
    for g in spec.grids or []:
        shared = [k for k in g if k in spec.grid and spec.where.get(f"grid['{k}']") != "--grid"]
        if shared:
            raise BatchError(
                f"{spec.where[f'grid[{shared[0]!r}]']}: grid['{shared[0]}'] is also an axis of grids at "
                f"{spec.where['grids']}: keep one (grid[...] axes are crossed with every one of grids)"
            )


def _check_size(spec: BatchSpec, n: int) -> None:
    made = n * (spec.repeat or 1)
    if made <= MAX_SUBEXPERIMENTS:
        return
    if spec.sample is not None and spec.sample <= n:
        raise BatchError(
            f"{spec.where.get('sample', 'MRL:sample')}: MRL:sample = {spec.sample:,} would make {made:,} "
            f"sub-experiments (the limit is {MAX_SUBEXPERIMENTS:,}): pick fewer"
        )
    raise BatchError(
        f"the batch would make {made:,} sub-experiments (the limit is {MAX_SUBEXPERIMENTS:,}): shrink "
        "the grid, or pick some with MRL:sample = K"
    )


def _in_params(spec: BatchSpec, key: str) -> bool:
    return key in spec.sets or any(key in d for d in spec.params or []) or any(key in g for g in spec.grids or [])


def unique(combos: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The combinations with duplicates removed, first occurrence kept, order kept."""
    seen: set[str] = set()
    out = []
    for c in combos:
        k = param_key(c)
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out


def draw(n: int, k: int, seed: int) -> list[int]:
    """The first `k` indices of one seeded permutation of range(n), in drawing order."""
    return list(itertools.islice(_permutation(n, seed), k))


def _permutation(n: int, seed: int) -> Iterator[int]:
    """A seeded random permutation of range(n), lazily: a Fisher-Yates shuffle run from the
    front, with only the swapped positions in a dict. Its first k values cost O(k) time and
    memory whatever n is, and do not depend on how many are taken after them."""
    rng = random.Random(seed)
    moved: dict[int, int] = {}
    for i in range(n):
        j = i + rng.randrange(n - i)
        value = moved.pop(j, j)
        if j != i:  # position i is never read again; j now holds what i held
            moved[j] = moved.pop(i, i)
        yield value


def sample_space(space: Space, k: int, seed: int) -> tuple[list[dict[str, Any]], int, bool]:
    """`k` distinct combinations of `space`, in grid order, drawn from one seeded permutation
    of its indices; returns them, the duplicates drawn on the way, and whether fewer than k
    distinct ones were found (the grid repeats values)."""
    picks: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    duplicates = 0
    for drawn, i in enumerate(_permutation(space.size, seed)):
        if drawn >= max(MAX_DRAWS, 20 * k):
            break
        combo = space[i]
        key = param_key(combo)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        picks.append((i, combo))
        if len(picks) == k:
            break
    picks.sort(key=lambda p: p[0])
    return [c for _, c in picks], duplicates, len(picks) < k
