"""`mrl table --where "val_loss < 0.3 and lr == 0.1 and state == 'done'"`: a row filter.

The text is parsed with `ast` and compiled by the walker below into a function of a row;
nothing is ever passed to `eval`. It knows only:

- column names (params, metrics, `id`, `exp`, `state`, `duration`, ...); a name that is not
  an identifier is written `col["train/loss"]`; a dotted column as shown (`param.id`, the
  param `id` of an older batch; `metric.lr`) is that column; a metric shown as `metric.x`
  is also `x`,
- numbers, strings, True/False/None, and lists/tuples of them (for `in`),
- comparisons (`< <= > >= == != in not in is is not`, chained), `and`, `or`, `not`,
- `+ - * /` and unary minus.

Anything else (attribute access, calls, subscripts of anything but `col`, lambdas,
comprehensions, `__import__`) is an MrlError naming it. An unknown name is an MrlError
listing the columns. A comparison that cannot be made (a missing value, a string against a
number) is false for that row, not an error.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from metarunlog.errors import MrlError
from metarunlog.safe_eval import COMPARISONS

Row = dict[str, Any]
Fn = Callable[[Row], Any]
COL = "col"
_ARITH: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_CONSTANT_TYPES = (int, float, str, bool, type(None))
# A filter is a line a person types; longer or deeper input is refused before Python's
# parser or our walker can run out of memory or stack on it.
MAX_LENGTH = 2000
MAX_DEPTH = 100


def compile_where(text: str, columns: Sequence[str], prefix: str = "metric.") -> Callable[[Row], bool]:
    """A predicate over rows for `text`; MrlError for what it does not allow or know."""
    tree = _parse(text, _bare_column(text, columns))
    fn = _Walker(text, list(columns), prefix).walk(tree.body)

    def predicate(row: Row) -> bool:
        try:
            return bool(fn(row))
        except (TypeError, ZeroDivisionError, ArithmeticError):
            return False

    return predicate


def _bare_column(text: str, columns: Sequence[str]) -> str | None:
    """A column whose name is no Python name (`Train Loss`, `top-1 acc`) written bare in `text`."""
    return next((c for c in columns if not c.isidentifier() and c in text and f'["{c}"]' not in text), None)


def _parse(text: str, bare: str | None = None) -> ast.Expression:
    example = "write it like \"val_loss < 0.3 and state == 'done'\""
    if bare is not None:  # `Train Loss < 0.5` cannot parse: say how to name that column
        example = f"for the column {bare} write col[{json.dumps(bare, ensure_ascii=False)}]; " + example
    if len(text) > MAX_LENGTH:
        raise MrlError(f"--where: the expression is {len(text)} characters long (at most {MAX_LENGTH}); {example}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise MrlError(f"--where {text!r}: cannot parse it ({e.msg}, column {e.offset}); {example}") from None
    except (MemoryError, RecursionError, ValueError):  # too deep for the parser; a NUL byte
        raise MrlError(f"--where {text[:80]!r}: cannot parse it (too deeply nested or a NUL byte); {example}") from None
    if _depth(tree.body) > MAX_DEPTH:
        raise MrlError(f"--where {text[:80]!r}: nested more than {MAX_DEPTH} levels deep; {example}")
    return tree


def _depth(node: ast.AST) -> int:
    """How deep `node` nests, without recursion (the walker recurses: it must not overflow)."""
    deepest, todo = 0, [(node, 1)]
    while todo:
        n, d = todo.pop()
        deepest = max(deepest, d)
        todo.extend((c, d + 1) for c in ast.iter_child_nodes(n))
    return deepest


def filter_rows(rows: list[Row], text: str, columns: Sequence[str]) -> list[Row]:
    keep = compile_where(text, columns)
    return [r for r in rows if keep(r)]


class _Walker:
    def __init__(self, text: str, columns: list[str], prefix: str) -> None:
        self.text, self.columns, self.prefix = text, columns, prefix

    def refuse(self, node: ast.AST, what: str | None = None) -> MrlError:
        shown = what or type(node).__name__
        try:
            src = ast.unparse(node)
        except Exception:  # noqa: BLE001 (only for the message)
            src = shown
        return MrlError(
            f"--where {self.text!r}: {shown} is not allowed ({src}); use column names, numbers, strings, "
            "comparisons, and/or/not, + - * /"
        )

    def walk(self, node: ast.AST) -> Fn:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise self.refuse(node)
        return method(node)  # type: ignore[no-any-return]

    def column(self, name: str, node: ast.AST) -> Fn:
        if name in FOLDER_COLUMNS and name in self.columns:
            return lambda row: _folder(row.get(name))
        if name in self.columns:
            return lambda row: row.get(name)
        if self.prefix + name in self.columns:
            key = self.prefix + name
            return lambda row: row.get(key)
        hint = next((c for c in self.columns if re.match(rf"{re.escape(name)}[^\w.]", c)), None)
        why = f"; for the column {hint} write col[{json.dumps(hint, ensure_ascii=False)}]" if hint else ""
        raise MrlError(f"--where: no column {name!r}{why}; the columns are: {', '.join(self.columns)}")

    def _Name(self, node: ast.Name) -> Fn:  # noqa: N802
        if node.id.startswith("__"):
            raise self.refuse(node, f"the name {node.id}")
        return self.column(node.id, node)

    def _Attribute(self, node: ast.Attribute) -> Fn:  # noqa: N802
        """A dotted column name as the table shows it (`param.id`, as mrl names a param `id` of
        an older batch; `metric.lr`, a metric shadowed by a param) is that column: what a user
        types from the header. Any other attribute access (a dunder, a call's) is refused."""
        if not _dotted_name(node):
            raise self.refuse(node)
        return self.column(ast.unparse(node), node)  # `param.idd`: no such column, the columns listed

    def _Constant(self, node: ast.Constant) -> Fn:  # noqa: N802
        if not isinstance(node.value, _CONSTANT_TYPES):
            raise self.refuse(node, "this constant")
        v = node.value
        return lambda row: v

    def _Subscript(self, node: ast.Subscript) -> Fn:  # noqa: N802
        key = node.slice
        if not (isinstance(node.value, ast.Name) and node.value.id == COL):
            raise self.refuse(node, 'indexing (other than col["name"])')
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise self.refuse(node, 'col[...] without a string (write col["train/loss"])')
        return self.column(key.value, node)

    def _List(self, node: ast.List | ast.Tuple) -> Fn:  # noqa: N802
        items = [self.walk(e) for e in node.elts]
        return lambda row: [f(row) for f in items]

    _Tuple = _List

    def _BoolOp(self, node: ast.BoolOp) -> Fn:  # noqa: N802
        parts = [self.walk(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda row: all(_true(p, row) for p in parts)
        return lambda row: any(_true(p, row) for p in parts)

    def _UnaryOp(self, node: ast.UnaryOp) -> Fn:  # noqa: N802
        inner = self.walk(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda row: not _true(inner, row)
        if isinstance(node.op, ast.USub):
            return lambda row: -inner(row)
        if isinstance(node.op, ast.UAdd):
            return lambda row: +inner(row)
        raise self.refuse(node, type(node.op).__name__)

    def _BinOp(self, node: ast.BinOp) -> Fn:  # noqa: N802
        op = _ARITH.get(type(node.op))
        if op is None:
            raise self.refuse(node, f"the operator {type(node.op).__name__}")
        left, right = self.walk(node.left), self.walk(node.right)
        return lambda row: op(_number(left(row)), _number(right(row)))

    def _Compare(self, node: ast.Compare) -> Fn:  # noqa: N802
        ops = []
        for op in node.ops:
            f = COMPARISONS.get(type(op))
            if f is None:
                raise self.refuse(node, f"the comparison {type(op).__name__}")
            ops.append(f)
        terms = [self.walk(node.left), *(self.walk(c) for c in node.comparators)]

        def compare(row: Row) -> bool:
            values = [t(row) for t in terms]
            return all(_cmp(f, a, b) for f, a, b in zip(ops, values, values[1:], strict=False))

        return compare


def _dotted_name(node: ast.expr) -> bool:
    """`a.b.c`: names joined by dots, nothing else (no call, subscript or dunder inside)."""
    while isinstance(node, ast.Attribute):
        if node.attr.startswith("__"):
            return False
        node = node.value
    return isinstance(node, ast.Name) and not node.id.startswith("__")


# Folder names the command line also takes as numbers (`mrl table 2`: experiment 0002).
FOLDER_COLUMNS = ("exp", "id")


# The id in a folder name: its only run of digits (`0002`, `run02` of subExpFormat "run{subExpId:02d}").
_FOLDER_NUMBER = re.compile(r"\D*(\d+)\D*")


class _FolderName(str):
    """A folder name (`0002`, `run02`) that equals and orders with the id it spells, as the
    command line takes it (`exp == 2`, `mrl run 1/2`), and is the text it is otherwise
    (`exp == '0002'`). A name with no digits, or several runs of them, is only text."""

    __hash__ = str.__hash__

    def _as(self, other: object) -> tuple[Any, Any]:
        m = _FOLDER_NUMBER.fullmatch(self) if type(other) is int else None
        if m:
            return int(m.group(1)), other
        return str(self), other

    def __eq__(self, other: object) -> bool:
        a, b = self._as(other)
        return bool(a == b)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __lt__(self, other: object) -> bool:
        a, b = self._as(other)
        return bool(a < b)

    def __le__(self, other: object) -> bool:
        a, b = self._as(other)
        return bool(a <= b)

    def __gt__(self, other: object) -> bool:
        a, b = self._as(other)
        return bool(a > b)

    def __ge__(self, other: object) -> bool:
        a, b = self._as(other)
        return bool(a >= b)


def _folder(v: Any) -> Any:
    return _FolderName(v) if isinstance(v, str) else v


def _true(fn: Fn, row: Row) -> bool:
    try:
        return bool(fn(row))
    except (TypeError, ArithmeticError):
        return False


def _number(v: Any) -> Any:
    # only numbers: a list (a param, a metric, `[1]`) times 9999999999 is a list of that size
    if not isinstance(v, (int, float)):
        raise TypeError("not a number")
    return v


def _cmp(f: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    if f in (operator.lt, operator.le, operator.gt, operator.ge) and (a is None or b is None):
        return False
    try:
        return bool(f(a, b))
    except TypeError:
        return False
