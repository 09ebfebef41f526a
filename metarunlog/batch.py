"""MRL lines -> the list of param dicts of a batch. Template text is parsed, never executed.

A template defines its batch with lines like

    -- MRL:grid['lr'] = [0.01, 0.1]
    -- MRL:params = [{'opt': 'sgd'}, {'opt': 'adam', 'beta': 0.9}]
    -- MRL:repeat = 3
    -- MRL:sample = 20
    -- MRL:seed = 7

behind any comment symbol (`--`, `#`, `//`, `%`, `;`, `<!-- ... -->`, `/* ... */`, or
none). Each line is parsed with `ast`: the target must be `grid['name']`, `params`,
`repeat`, `sample` or `seed`, and the value must be a Python literal, read with
`ast.literal_eval` (the original metarunlog ran these lines with `exec`; this module
never evaluates template text). The lines are removed from the rendered files.

Combinations: the grid is a Cartesian product in declaration order (the first line
varies slowest), crossed with the params list (each params dict, in order, with every
grid point; on a shared key the grid value wins, as in the original). `--set` values
override every combination; identical combinations are made once; `sample` keeps a
seeded random subset (a prefix of one seeded permutation, so a larger `sample` keeps the
smaller one's picks); `repeat` makes each combination N times with a `repeat` param.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import json
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from metarunlog.errors import BatchError

DIRECTIVES = ("grid", "params", "repeat", "sample", "seed")
REPEAT_KEY = "repeat"
DEFAULT_SEED = 0

# Optional indentation, an optional comment opener (punctuation only, at most 4 chars:
# `--`, `#`, `//`, `%`, `;`, `<!--`, `/*`), then `MRL:`. `# see MRL: docs` is not one.
_MRL_RE = re.compile(r"^[ \t]*(?P<open>[^\w\s]{0,4})[ \t]*MRL:(?P<stmt>.*?)[ \t]*\r?$")
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
    params: list[dict[str, Any]] | None = None
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
    duplicates: int
    sampled_out: int


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
    m = _MRL_RE.match(line.rstrip("\n"))
    if m is None:
        return None
    stmt = m.group("stmt")
    closer = _CLOSERS.get(m.group("open"))
    if closer and stmt.endswith(closer):
        stmt = stmt[: -len(closer)].rstrip()
    return stmt


def parse_spec(lines: Iterable[MrlLine]) -> BatchSpec:
    """Read every MRL line into one BatchSpec; a bad or repeated line is a BatchError."""
    spec = BatchSpec()
    for line in lines:
        spec.has_lines = True
        kind, key, value = parse_line(line)
        _add(spec, kind, key, value, line)
    return spec


def parse_line(line: MrlLine) -> tuple[str, str | None, Any]:
    """`(directive, grid key or None, value)` for one MRL line, value checked."""
    target, value_node = _assignment(line)
    kind, key = _target(target, line)
    value = _literal(value_node, line)
    return kind, key, _check_value(kind, key, value, line)


_FORMS = (
    "grid['name'] = [values], params = [{...}, ...], repeat = N, sample = K or seed = S"
)


def _assignment(line: MrlLine) -> tuple[ast.expr, ast.expr]:
    try:
        tree = ast.parse(line.stmt.strip(), mode="exec")
    except SyntaxError as e:
        raise BatchError(
            f"{line.where}: cannot read MRL line '{line.stmt.strip()}' ({e.msg}); "
            f"it must be one of: {_FORMS}"
        ) from None
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], ast.Assign) or len(body[0].targets) != 1:
        raise BatchError(
            f"{line.where}: MRL line '{line.stmt.strip()}' is not an assignment; "
            f"it must be one of: {_FORMS}"
        )
    return body[0].targets[0], body[0].value


def _target(node: ast.expr, line: MrlLine) -> tuple[str, str | None]:
    if isinstance(node, ast.Name):
        if node.id in DIRECTIVES and node.id != "grid":
            return node.id, None
        if node.id == "grid":
            raise BatchError(f"{line.where}: write one axis per line: grid['name'] = [values]")
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
        f"{line.where}: cannot assign to '{ast.unparse(node)}' in an MRL line; use one of: {_FORMS}"
    )


def _literal(node: ast.expr, line: MrlLine) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise BatchError(
            f"{line.where}: the value '{_short(ast.unparse(node))}' is not a Python literal "
            "(numbers, strings, True/False/None, lists, tuples, dicts); MRL lines are "
            "read, never run"
        ) from None


def _check_value(kind: str, key: str | None, value: Any, line: MrlLine) -> Any:
    where = line.where
    if kind == "grid":
        assert key is not None
        _check_name(key, where)
        if not isinstance(value, (list, tuple)):
            raise BatchError(f"{where}: grid['{key}'] must be a list of values, like [0.1, 0.01]")
        if not value:
            raise BatchError(f"{where}: grid['{key}'] is empty: give at least one value")
        return [check_json(v, f"{where}: grid['{key}']") for v in value]
    if kind == "params":
        return check_params_list(value, where)
    return _check_count(kind, value, where)


def check_params_list(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(d, dict) for d in value):
        raise BatchError(f"{where}: params must be a list of dicts, like [{{'lr': 0.1}}, {{'lr': 0.2}}]")
    if not value:
        raise BatchError(f"{where}: params is an empty list: give at least one dict")
    out = []
    for d in value:
        for k in d:
            if not isinstance(k, str):
                raise BatchError(f"{where}: params keys must be strings, not {k!r}")
            _check_name(k, where)
        out.append({k: check_json(v, f"{where}: params['{k}']") for k, v in d.items()})
    return out


def _check_count(kind: str, value: Any, where: str) -> int:
    if kind == "seed":
        if not isinstance(value, int) or isinstance(value, bool):
            raise BatchError(f"{where}: seed must be an integer, not {value!r}")
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BatchError(f"{where}: {kind} must be a positive integer, not {value!r}")
    return value


def _check_name(key: str, where: str) -> None:
    if not key.isidentifier():
        raise BatchError(
            f"{where}: param name '{key}' must be an identifier (letters, digits, _) so "
            "templates can use it as {{ name }}"
        )


def check_json(value: Any, where: str) -> Any:
    """`value` if it can be stored in a JSON record (tuples become lists), else BatchError."""
    if value is None or isinstance(value, (bool, int, str)):
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
        return {k: check_json(v, where) for k, v in value.items()}
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
    return key, value


def parse_set(item: str) -> tuple[str, Any]:
    """`--set KEY=VALUE`: the value as a literal, falling back to a string."""
    key, value = _split_kv(item, "--set", "KEY=VALUE")
    return key, check_json(parse_value(value), f"--set {key}")


def parse_grid(item: str) -> tuple[str, list[Any]]:
    """`--grid KEY=V1,V2,...` (or `KEY=[V1, V2]`): the axis values, each a literal or a string."""
    key, text = _split_kv(item, "--grid", "KEY=V1,V2,...")
    values = _grid_values(text)
    if not values:
        raise BatchError(f"--grid {key}: no values: give them as {key}=V1,V2,...")
    return key, [check_json(v, f"--grid {key}") for v in values]


def _grid_values(text: str) -> list[Any]:
    text = text.strip()
    if not text:
        return []
    whole = parse_value(text)
    if isinstance(whole, list) and text.startswith("["):
        return whole
    as_list = parse_value(f"[{text}]")
    if isinstance(as_list, list):
        return as_list
    return [parse_value(part) for part in text.split(",")]


def apply_overrides(
    spec: BatchSpec, sets: Sequence[tuple[str, Any]] = (), grids: Sequence[tuple[str, list[Any]]] = ()
) -> BatchSpec:
    """`--grid` adds or replaces an axis; `--set` fixes a param in every combination."""
    for key, values in grids:
        spec.grid[key] = list(values)
        spec.where[f"grid['{key}']"] = "--grid"
    for key, value in sets:
        spec.sets[key] = value
        if key in spec.grid:  # a fixed axis, rather than N identical combinations
            spec.grid[key] = [value]
    return spec


# -- combinations ----------------------------------------------------------------------


def param_key(params: dict[str, Any]) -> str:
    """A canonical text for a param dict: equal keys <=> the same combination (1 != 1.0)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def expand(spec: BatchSpec) -> Expansion:
    """The combinations of `spec`, in order, duplicates made once."""
    if spec.repeat is not None and (REPEAT_KEY in spec.grid or _in_params(spec, REPEAT_KEY)):
        raise BatchError(
            f"{spec.where.get('repeat', 'MRL:repeat')}: MRL:repeat adds a '{REPEAT_KEY}' param, "
            f"but the grid or params already define '{REPEAT_KEY}': rename one"
        )
    combos = _cross(spec)
    total = len(combos)
    combos = unique(combos)
    duplicates = total - len(combos)
    before = len(combos)
    if spec.sample is not None:
        combos = sample(combos, spec.sample, DEFAULT_SEED if spec.seed is None else spec.seed)
    if spec.repeat is not None:
        combos = [{**c, REPEAT_KEY: r} for c in combos for r in range(spec.repeat)]
    return Expansion(combos, total, duplicates, before - min(before, spec.sample or before))


def _in_params(spec: BatchSpec, key: str) -> bool:
    return key in spec.sets or any(key in d for d in spec.params or [])


def _cross(spec: BatchSpec) -> list[dict[str, Any]]:
    keys = list(spec.grid)
    points = [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*spec.grid.values())]
    plist = spec.params if spec.params is not None else [{}]
    sets = spec.sets
    return [{**p, **g, **sets} for p in plist for g in points]


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


def sample(combos: list[dict[str, Any]], k: int, seed: int) -> list[dict[str, Any]]:
    """`k` of `combos` chosen by `seed`, in their original order.

    The first `k` of one seeded permutation: growing `k` keeps the earlier picks, so
    `makebatch --extend` after raising `sample` only adds.
    """
    order = list(range(len(combos)))
    random.Random(seed).shuffle(order)
    return [combos[i] for i in sorted(order[:k])]
