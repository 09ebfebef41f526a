"""A small evaluator for the value side of MRL lines: a safe subset of Python, walked by hand.

The original metarunlog ran MRL lines with `exec`. mrl never runs template text: it walks
the expression's AST itself and knows only what is listed here:

- literals (numbers, strings, True/False/None, lists, tuples, sets, dicts, `*`/`**` unpacking),
- arithmetic (`+ - * / // % **`, unary `-`/`+`), comparisons, `and`/`or`/`not`, `x if c else y`,
- list/set/dict comprehensions and generator expressions, with `if` filters,
- indexing and slicing (`grid['lr']`, `xs[1:]`),
- string `%` formatting, `'...'.format(...)`, f-strings and `format(value, spec)`,
- the functions in FUNCTIONS (`range`, `zip`, `enumerate`, `len`, `min`, `max`, `sum`, `abs`,
  `round`, `int`, `float`, `str`, `bool`, `list`, `tuple`, `dict`, `set`, `sorted`, `any`,
  `all`, `format`, and the numpy-free `linspace(a, b, n)` / `logspace(a, b, n)`),
- the names the caller passes (MRL lines get `grid`, the axes defined on earlier lines).

Anything else (attribute access, other names, lambdas, imports, walrus, dunder names) is
an `EvalError` naming the construct. Budgets bound the work, so that a typo such as
`range(10**12)` or `[0] * 10**10` fails at once instead of eating the machine: see the
MAX_* constants (docs/makebatch.md lists them).
"""

from __future__ import annotations

import ast
import operator
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

MAX_ELEMENTS = 1_000_000  # elements in any one value, counted through nesting and sharing
MAX_STEPS = 1_000_000  # evaluation steps (nodes visited, loop iterations): well under a second
MAX_INT_BITS = 4096  # integers up to about 10**1233
MAX_STR = 1_000_000  # characters in one string
MAX_FORMAT_WIDTH = 1000  # width / precision in a format spec
MAX_DEPTH = 100  # nesting of the expression


class EvalError(Exception):
    """The expression uses something outside the safe subset, or exceeds a budget."""


# -- the functions an MRL line may call ----------------------------------------------------


def _linspace(start: float, stop: float, num: int = 50) -> list[float]:
    """`num` evenly spaced numbers from `start` to `stop`, both included (like numpy's)."""
    start, stop, num = _number(start, "linspace"), _number(stop, "linspace"), _count(num, "linspace")
    if num == 1:
        return [float(start)]
    return [float(start + (stop - start) * i / (num - 1)) for i in range(num)]


def _logspace(start: float, stop: float, num: int = 50, base: float = 10.0) -> list[float]:
    """`base ** x` for `x` in `linspace(start, stop, num)`: logspace(-3, -1, 3) is [0.001, 0.01, 0.1]."""
    base = _number(base, "logspace")
    out = []
    for x in _linspace(start, stop, num):
        try:
            out.append(float(base**x))
        except (OverflowError, ZeroDivisionError) as e:
            raise EvalError(f"logspace: {base} ** {x}: {_why(e)}") from None
    return out


def _why(e: Exception) -> str:
    """An arithmetic error in words: a float's OverflowError reads `(34, 'Numerical result out
    of range')`, the errno tuple of the C library."""
    if isinstance(e, OverflowError) and len(e.args) == 2 and isinstance(e.args[1], str):
        return f"{e.args[1].lower()} (beyond a float, about 1.8e308)"
    return str(e)


def _range(*args: Any) -> list[int]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        raise EvalError("range takes 1 to 3 integers: range(stop), range(start, stop[, step])")
    try:
        r = range(*args)
    except ValueError as e:
        raise EvalError(f"range: {e}") from None
    if len(r) > MAX_ELEMENTS:
        raise EvalError(f"range of {len(r):,} values is over the limit of {MAX_ELEMENTS:,}")
    return list(r)


def _round(x: Any, ndigits: Any = None) -> Any:
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > 400):
        raise EvalError("round: ndigits must be an integer between -400 and 400")
    return round(_number(x, "round"), ndigits)


def _int(x: Any = 0, base: Any = None) -> int:
    if base is None:
        return int(x)
    return int(x, base)


def _format(value: Any, spec: Any = "") -> str:
    if not isinstance(spec, str):
        raise EvalError("format: the spec must be a string, like format(x, '.3g')")
    _check_spec(spec)
    return format(value, spec)


def _number(x: Any, fn: str) -> Any:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise EvalError(f"{fn}: expected a number, got {_show(x)}")
    return x


def _count(n: Any, fn: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise EvalError(f"{fn}: the number of values must be a positive integer, not {_show(n)}")
    if n > MAX_ELEMENTS:
        raise EvalError(f"{fn}: {n:,} values is over the limit of {MAX_ELEMENTS:,}")
    return n


def _ordered(value: Any) -> Any:
    """A set in sorted order (when its elements sort): Python iterates a set of strings in
    a different order in each process, and a batch must come out the same every time."""
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=repr)
    return value


def _zip(*its: Any, strict: bool = False) -> list[tuple[Any, ...]]:
    return list(zip(*map(_ordered, its), strict=strict))


def _enumerate(it: Any, start: int = 0) -> list[tuple[int, Any]]:
    return list(enumerate(_ordered(it), start))


def _list(it: Any = ()) -> list[Any]:
    return list(_ordered(it))


def _tuple(it: Any = ()) -> tuple[Any, ...]:
    return tuple(_ordered(it))


def _sorted(it: Any, reverse: bool = False) -> list[Any]:
    return sorted(it, reverse=reverse)


# Python's own functions where they cannot allocate more than their arguments hold; the
# others are wrapped above. Results are checked against the budgets as they come back.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "range": _range,
    "zip": _zip,
    "enumerate": _enumerate,
    "len": len,
    "min": min,
    "max": max,
    "sum": sum,  # replaced by Evaluator._sum (budgeted + on lists)
    "abs": abs,
    "round": _round,
    "int": _int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": _list,
    "tuple": _tuple,
    "dict": dict,
    "set": set,
    "sorted": _sorted,
    "any": any,
    "all": all,
    "format": _format,
    "linspace": _linspace,
    "logspace": _logspace,
}

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
# Comparisons both walkers allow (MRL lines here, `mrl table --where` in where.py).
COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}

# What a construct is called in an error ("attribute access is not allowed ...").
_NAMES = {
    ast.Attribute: "attribute access",
    ast.Lambda: "a lambda",
    ast.NamedExpr: "':=' (assignment)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.BitAnd: "'&'",
    ast.BitOr: "'|'",
    ast.BitXor: "'^'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.MatMult: "'@'",
    ast.Invert: "'~'",
}

_SCALARS = (int, float, str, bool, type(None))
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)


def _show(value: Any, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _check_spec(spec: str) -> None:
    """A format spec may not ask for a huge width or precision (`'{:1000000000}'`)."""
    for digits in re.findall(r"\d+", spec):
        if len(digits) > 4 or int(digits) > MAX_FORMAT_WIDTH:
            raise EvalError(f"format width or precision {digits} is over the limit of {MAX_FORMAT_WIDTH}")


class _Formatter(string.Formatter):
    """`str.format` without attribute access in fields (`'{0.__class__}'` is refused)."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if "." in field_name:
            raise EvalError(f"attribute access in a format field ('{{{field_name}}}') is not allowed")
        return super().get_field(field_name, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec(format_spec)
        return super().format_field(value, format_spec)


class Evaluator:
    """Evaluates one expression tree against `names`; one instance per expression (budgets)."""

    def __init__(self, names: Mapping[str, Any] | None = None) -> None:
        self.names = dict(names or {})
        self.steps = 0
        self.depth = 0
        self._sizes: dict[int, tuple[Any, int]] = {}  # id -> (container kept alive, size)

    # -- budgets -------------------------------------------------------------------------

    def _step(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise EvalError(f"too much work (over {MAX_STEPS:,} steps): write the values out or use fewer")

    def size(self, value: Any, cap: int = MAX_ELEMENTS + 1) -> int:
        """Elements in `value` counted through nesting, a shared sublist once per use;
        counting stops past `cap` (the budgets only need to know it is too many)."""
        if isinstance(value, str):
            return 1 + len(value) // 64
        if isinstance(value, _SCALARS):
            return 1
        hit = self._sizes.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        total = 1
        parts = (value.keys(), value.values()) if isinstance(value, dict) else (value,)
        for part in parts if isinstance(value, (list, tuple, set, frozenset, dict)) else ():
            for item in part:
                total += self.size(item, cap - total)
                if total > cap:
                    return total  # not cached: a larger cap would count further
        self._sizes[id(value)] = (value, total)
        return total

    def made(self, value: Any) -> Any:
        """A value just built: check it against the budgets, remember a container's size."""
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            if value.bit_length() > MAX_INT_BITS:
                raise EvalError(f"an integer of {value.bit_length():,} bits is over the limit of {MAX_INT_BITS:,}")
            return value
        if isinstance(value, str):
            if len(value) > MAX_STR:
                raise EvalError(f"a string of {len(value):,} characters is over the limit of {MAX_STR:,}")
            return value
        if isinstance(value, (list, tuple, set, frozenset, dict)):
            self._step(len(value))
            n = self.size(value)
            if n > MAX_ELEMENTS:
                raise EvalError(f"a value of over {MAX_ELEMENTS:,} elements is over the limit")
        return value

    # -- the walk ------------------------------------------------------------------------

    def eval(self, node: ast.AST) -> Any:
        self._step()
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise EvalError(f"the expression is nested more than {MAX_DEPTH} deep")
            method = getattr(self, "_" + type(node).__name__, None)
            if method is None:
                raise EvalError(f"{_describe(node)} is not allowed")
            return method(node)
        finally:
            self.depth -= 1

    def _Expression(self, node: ast.Expression) -> Any:
        return self.eval(node.body)

    def _Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, _SCALARS):
            raise EvalError(f"the constant {_show(node.value)} ({type(node.value).__name__}) is not allowed")
        return self.made(node.value)

    def _Name(self, node: ast.Name) -> Any:
        name = node.id
        if name.startswith("__"):
            raise EvalError(f"the name '{name}' is not allowed")
        if name in self.names:
            return self.names[name]
        if name in FUNCTIONS:
            return FUNCTIONS[name]
        raise EvalError(f"the name '{name}' is not known here ({_known(self.names)})")

    def _List(self, node: ast.List) -> list[Any]:
        return self.made(list(self._items(node.elts)))

    def _Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return self.made(tuple(self._items(node.elts)))

    def _Set(self, node: ast.Set) -> set[Any]:
        return self.made(self._hashing(lambda: set(self._items(node.elts))))

    def _items(self, elts: list[ast.expr]) -> Iterator[Any]:
        for e in elts:
            if isinstance(e, ast.Starred):
                yield from self._iterable(self.eval(e.value), "*")
            else:
                yield self.eval(e)

    def _Dict(self, node: ast.Dict) -> dict[Any, Any]:
        def build() -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:  # {**other}
                    other = self.eval(v)
                    if not isinstance(other, dict):
                        raise EvalError(f"'**' needs a dict, not {_show(other)}")
                    out.update(other)
                else:
                    out[self.eval(k)] = self.eval(v)
            return out

        return self.made(self._hashing(build))

    def _hashing(self, build: Callable[[], Any]) -> Any:
        try:
            return build()
        except TypeError as e:
            raise EvalError(f"{e} (a list cannot be a dict key or a set element: use a tuple)") from None

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise EvalError(f"unary minus/plus needs a number, not {_show(value)}")
            return -value if isinstance(node.op, ast.USub) else +value
        raise EvalError(f"{_describe(node.op)} is not allowed")

    def _BinOp(self, node: ast.BinOp) -> Any:
        fn = _BINOPS.get(type(node.op))
        if fn is None:
            raise EvalError(f"{_describe(node.op)} is not allowed")
        left, right = self.eval(node.left), self.eval(node.right)
        self._check_binop(node.op, left, right)
        try:
            if isinstance(node.op, ast.Mod) and isinstance(left, str):
                return self.made(_percent(left, right))
            return self.made(fn(left, right))
        except EvalError:
            raise
        except (ArithmeticError, TypeError, ValueError) as e:
            sym = _SYMBOLS[type(node.op)]
            raise EvalError(f"{_show(left)} {sym} {_show(right)}: {_why(e)}") from None

    def _check_binop(self, op: ast.operator, left: Any, right: Any) -> None:
        """Refuse, before computing, what would be too big to compute."""
        if isinstance(op, ast.Pow) and _is_int(left) and _is_int(right) and right > 0:
            bits = (abs(left).bit_length() - 1) * right  # a lower bound of the result's bits
            if bits > MAX_INT_BITS:
                raise EvalError(f"{_show(left)} ** {right} is too large (over {MAX_INT_BITS:,} bits)")
        if isinstance(op, ast.Mult):
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and _is_int(n) and n > 1:
                    self._check_repeat(seq, n)
        strings = isinstance(op, ast.Add) and isinstance(left, str) and isinstance(right, str)
        if strings and len(left) + len(right) > MAX_STR:
            raise EvalError(f"a string of over {MAX_STR:,} characters is over the limit")

    def _check_repeat(self, seq: Any, n: int) -> None:
        if isinstance(seq, str):
            if len(seq) * n > MAX_STR:
                raise EvalError(f"{_show(seq)} * {n:,} makes a string of over {MAX_STR:,} characters")
            return
        per = self.size(seq, MAX_ELEMENTS // n + 2) - 1
        if per * n > MAX_ELEMENTS:
            raise EvalError(f"{_show(seq)} * {n:,} makes over {MAX_ELEMENTS:,} elements, the limit")

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for operand in node.values:
            value = self.eval(operand)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.eval(right_node)
            fn = COMPARISONS[type(op)]
            try:
                ok = fn(left, right)
            except TypeError as e:
                raise EvalError(f"cannot compare {_show(left)} and {_show(right)}: {e}") from None
            if not ok:
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def _Subscript(self, node: ast.Subscript) -> Any:
        value = self.eval(node.value)
        index = self.eval(node.slice)
        if not isinstance(value, (list, tuple, str, dict)):
            raise EvalError(f"cannot index {_show(value)}")
        try:
            return self.made(value[index])
        except KeyError:
            if node.value.__class__ is ast.Name and node.value.id == "grid":
                raise EvalError(f"grid[{index!r}] is not defined on an earlier line") from None
            raise EvalError(f"{index!r} is not a key of {_show(value)}") from None
        except (IndexError, TypeError, ValueError) as e:
            raise EvalError(f"{_show(value)}[{_show(index)}]: {e}") from None

    def _Slice(self, node: ast.Slice) -> slice:
        parts = [None if p is None else self.eval(p) for p in (node.lower, node.upper, node.step)]
        return slice(*parts)

    def _Call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Attribute):
            return self._method(node)
        if not isinstance(node.func, ast.Name):
            raise EvalError(f"calling {_describe(node.func)} is not allowed")
        fn = self._Name(node.func)
        if fn not in FUNCTIONS.values():
            raise EvalError(f"'{node.func.id}' is not a function")
        args, kwargs = self._args(node)
        if fn is sum:
            return self._sum(*args, **kwargs)
        try:
            return self.made(fn(*args, **kwargs))
        except EvalError:
            raise
        except (ArithmeticError, TypeError, ValueError) as e:
            raise EvalError(f"{node.func.id}(): {e}") from None

    def _method(self, node: ast.Call) -> str:
        """The one method call allowed: `'...'.format(...)` on a string."""
        assert isinstance(node.func, ast.Attribute)
        if node.func.attr != "format":
            raise EvalError(f"attribute access ('.{node.func.attr}') is not allowed")
        template = self.eval(node.func.value)
        if not isinstance(template, str):
            raise EvalError("attribute access is not allowed ('.format' works on a string only)")
        args, kwargs = self._args(node)
        try:
            return self.made(_Formatter().vformat(template, args, kwargs))
        except EvalError:
            raise
        except (IndexError, KeyError, TypeError, ValueError) as e:
            raise EvalError(f"{_show(template)}.format(): {type(e).__name__}: {e}") from None

    def _args(self, node: ast.Call) -> tuple[list[Any], dict[str, Any]]:
        args = list(self._items(node.args))
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            value = self.eval(kw.value)
            if kw.arg is None:
                if not isinstance(value, dict):
                    raise EvalError(f"'**' needs a dict, not {_show(value)}")
                kwargs.update(value)
            else:
                kwargs[kw.arg] = value
        if any(not isinstance(k, str) or k.startswith("__") for k in kwargs):
            raise EvalError("keyword arguments must be plain names")
        return args, kwargs

    def _sum(self, iterable: Any, start: Any = 0) -> Any:
        total = start
        for x in self._iterable(iterable, "sum"):
            self._step()
            self._check_binop(ast.Add(), total, x)
            try:
                total = self.made(total + x)
            except TypeError as e:
                raise EvalError(f"sum(): {e}") from None
        return total

    def _JoinedStr(self, node: ast.JoinedStr) -> str:
        parts = [str(v.value) if isinstance(v, ast.Constant) else self.eval(v) for v in node.values]
        return self.made("".join(parts))

    def _FormattedValue(self, node: ast.FormattedValue) -> str:
        value = self.eval(node.value)
        if node.conversion == ord("r"):
            value = repr(value)
        elif node.conversion in (ord("s"), ord("a")):
            value = str(value) if node.conversion == ord("s") else ascii(value)
        spec = "" if node.format_spec is None else self.eval(node.format_spec)
        _check_spec(spec)
        try:
            return self.made(format(value, spec))
        except (TypeError, ValueError) as e:
            raise EvalError(f"f-string: {e}") from None

    # -- comprehensions --------------------------------------------------------------------

    def _ListComp(self, node: ast.ListComp) -> list[Any]:
        return self.made([self.eval(node.elt) for _ in self._loops(node.generators, 0)])

    def _GeneratorExp(self, node: ast.GeneratorExp) -> list[Any]:
        return self.made([self.eval(node.elt) for _ in self._loops(node.generators, 0)])

    def _SetComp(self, node: ast.SetComp) -> set[Any]:
        return self.made(self._hashing(lambda: {self.eval(node.elt) for _ in self._loops(node.generators, 0)}))

    def _DictComp(self, node: ast.DictComp) -> dict[Any, Any]:
        def build() -> dict[Any, Any]:
            return {self.eval(node.key): self.eval(node.value) for _ in self._loops(node.generators, 0)}

        return self.made(self._hashing(build))

    def _loops(self, gens: list[ast.comprehension], i: int) -> Iterator[None]:
        """Bind the loop variables of `gens[i:]` in self.names, once per combination that
        passes the filters; the names are restored afterwards (comprehension scope)."""
        if i == len(gens):
            yield None
            return
        gen = gens[i]
        if gen.is_async:
            raise EvalError("async comprehensions are not allowed")
        targets = _target_names(gen.target)
        saved = {n: self.names[n] for n in targets if n in self.names}
        try:
            for item in self._iterable(self.eval(gen.iter), "for"):
                self._step()
                self._bind(gen.target, item)
                if all(self.eval(cond) for cond in gen.ifs):
                    yield from self._loops(gens, i + 1)
        finally:
            for n in targets:
                self.names.pop(n, None)
            self.names.update(saved)

    def _bind(self, target: ast.expr, value: Any) -> None:
        if isinstance(target, ast.Name):
            self.names[target.id] = value
            return
        assert isinstance(target, (ast.Tuple, ast.List))
        items = list(self._iterable(value, "unpack"))
        if len(items) != len(target.elts):
            raise EvalError(f"cannot unpack {_show(value)} into {len(target.elts)} names")
        for t, v in zip(target.elts, items, strict=True):
            self._bind(t, v)

    def _iterable(self, value: Any, what: str) -> Iterable[Any]:
        if isinstance(value, dict):
            return list(value)
        if isinstance(value, (list, tuple, str, set, frozenset)):
            return _ordered(value)
        raise EvalError(f"{what}: {_show(value)} is not a list, tuple, dict or string")


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        if target.id.startswith("__"):
            raise EvalError(f"the name '{target.id}' is not allowed")
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _target_names(t)]
    raise EvalError(f"a loop variable must be a name or a tuple of names, not {_describe(target)}")


def _percent(template: str, args: Any) -> str:
    """`template % args` with widths and precisions bounded (`'%1000000000d'` is refused)."""
    for m in _PERCENT_SPEC.finditer(template):
        for part in (m.group(1), m.group(2)):
            if part == "*":
                raise EvalError("'*' widths in % formatting are not allowed: write the width in the string")
            if part and (len(part) > 4 or int(part) > MAX_FORMAT_WIDTH):
                raise EvalError(f"format width or precision {part} is over the limit of {MAX_FORMAT_WIDTH}")
    return template % args


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _known(names: Mapping[str, Any]) -> str:
    funcs = ", ".join(FUNCTIONS)
    return f"known: {', '.join(sorted(names))} and {funcs}" if names else f"known: {funcs}"


def _describe(node: ast.AST) -> str:
    for kind, text in _NAMES.items():
        if isinstance(node, kind):
            return text
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "import"
    return f"'{type(node).__name__}'"


def evaluate(node: ast.expr | str, names: Mapping[str, Any] | None = None) -> Any:
    """The value of `node` (an expression tree, or its source text); EvalError if it is
    outside the safe subset or over a budget."""
    if isinstance(node, str):
        text = node.strip()
        try:
            node = ast.parse(text, mode="eval").body
        except SyntaxError as e:
            raise EvalError(f"cannot read '{text}': {e.msg}") from None
        except (MemoryError, RecursionError):
            raise EvalError("the expression is nested too deep") from None
    try:
        return Evaluator(names).eval(node)
    except RecursionError:
        raise EvalError("the expression is nested too deep") from None
    except MemoryError:
        raise EvalError("the expression needs too much memory") from None
