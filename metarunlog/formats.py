"""Check that a rendered `.json`, `.yaml`/`.yml` or `.toml` config still parses.

A Jinja `{{ opt }}` renders a string param bare (`"opt": adam`) and a dict, bool or None
as Python's repr (`{'a': 1}`, `True`, `None`): invalid JSON/TOML, or a silently different
YAML value. makebatch parses each rendered file of these formats before anything is
written, and a failure names the file, the line, the value and the fix (`| tojson`).
JSON and TOML use the standard library (`tomllib`, Python 3.11+; without it TOML is not
checked); YAML is checked only when PyYAML is installed (syntax, so custom tags pass, and
a param whose bare rendering YAML reads as another value: `Misread`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from metarunlog.errors import BatchError


@dataclass
class Problem:
    """Where a rendered text stopped parsing: 1-based line and column, and why."""

    line: int
    column: int
    message: str


def _json(text: str) -> Problem | None:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return Problem(e.lineno, e.colno, e.msg)
    return None


def _toml_parser() -> Callable[[str], Problem | None] | None:
    try:
        import tomllib
    except ImportError:  # Python 3.10: not checked
        return None

    def check(text: str) -> Problem | None:
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
            message = re.sub(r"\s*\(at .*?\)$", "", str(e))
            return Problem(int(m.group(1)), int(m.group(2)), message) if m else Problem(1, 1, message)
        return None

    return check


def _yaml_parser() -> Callable[[str], Problem | None] | None:
    try:
        import yaml
    except ImportError:  # PyYAML is not a dependency: YAML is then not checked
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def check(text: str) -> Problem | None:
        try:
            for _ in yaml.parse(text, Loader=loader):  # events only: tags need no constructor
                pass
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            return Problem(line, col, str(e.problem or e.context or "invalid YAML"))
        except yaml.YAMLError as e:
            return Problem(1, 1, str(e))
        return None

    return check


@dataclass(frozen=True)
class Misread:
    """A param rendered bare as a whole YAML scalar that YAML reads as another value."""

    key: str
    shown: str  # what `{{ key }}` rendered
    read: str  # what YAML reads there ("True", "null"...)
    line: int  # 1-based, in the rendered text


_YAML_READS = {"bool": "a boolean", "null": "null", "int": "a number", "float": "a number", "str": "the string '{}'"}


def _yaml_misreads() -> Callable[[str, Mapping[str, Any]], Misread | None] | None:
    """What finds a param whose `{{ x }}` YAML reads as another value (`yes`, `no`, `on`,
    `off` and `null`/`~` strings as booleans or null, `None` as the string "None", "0.1" as
    a number): valid YAML, so the syntax check passes, while the file holds another value
    than the record's params. Only a bare (plain, untagged) scalar holding exactly the
    rendered text counts; YAML 1.1's rules, as PyYAML (what most Python configs use) reads."""
    try:
        import yaml
    except ImportError:
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    resolve = yaml.resolver.Resolver().resolve
    wants = {type(None): "null", str: "str"}
    tags: dict[str, str] = {}

    def misread(text: str, params: Mapping[str, Any]) -> Misread | None:
        suspects: dict[str, tuple[str, str]] = {}
        for key, value in params.items():
            want, shown = wants.get(type(value)), str(value)
            if want is not None:
                if shown not in tags:  # a grid renders the same values thousands of times
                    tags[shown] = resolve(yaml.ScalarNode, shown, (True, False)).rpartition(":")[2]
                tag = tags[shown]
                if tag != want:
                    suspects.setdefault(shown, (key, _YAML_READS.get(tag, f"a {tag}").format(shown)))
        if not suspects:
            return None  # the usual grid (numbers, plain words): no second parse
        for ev in yaml.parse(text, Loader=loader):
            if isinstance(ev, yaml.ScalarEvent) and not ev.style and ev.implicit[0] and ev.value in suspects:
                key, read = suspects[ev.value]
                return Misread(key, ev.value, read, ev.start_mark.line + 1)
        return None

    return misread


FORMATS: dict[str, tuple[str, Callable[[], Callable[[str], Problem | None] | None]]] = {
    ".json": ("JSON", lambda: _json),
    ".toml": ("TOML", _toml_parser),
    ".yaml": ("YAML", _yaml_parser),
    ".yml": ("YAML", _yaml_parser),
}


@dataclass
class Checker:
    """Parses one template's rendered text in its format."""

    name: str  # the template's file name
    format: str  # "JSON", "YAML", "TOML"
    parse: Callable[[str], Problem | None]
    misread: Callable[[str, Mapping[str, Any]], Misread | None] | None = None  # YAML's other values

    def check(
        self, text: str, params: Mapping[str, Any], where: Callable[[int], str], label: Callable[[], str]
    ) -> None:
        """BatchError naming file, line, value and fix when `text` does not parse.

        `where(rendered_line)` says which line of the template that is."""
        problem = self.parse(text)
        if problem is None:
            wrong = self.misread(text, params) if self.misread is not None else None
            if wrong is not None:
                raise BatchError(
                    f"{where(wrong.line)}: param {wrong.key} rendered as {_short(wrong.shown)}, which {self.format} "
                    f"reads as {wrong.read}, not the {_kind(params[wrong.key])} its params hold (rendering "
                    f"{label()}): write {_tojson(wrong.key)} in the template to keep it, or give the param the "
                    "value the file should hold (True, False, None or a number)"
                )
            return
        lines = text.splitlines()
        at = lines[problem.line - 1] if 0 < problem.line <= len(lines) else ""
        if problem.message == TOO_DEEP:  # no param's quoting mends that
            raise BatchError(
                f"{where(problem.line)}: the rendered file is not valid {self.format} ({TOO_DEEP}: "
                f"more than ~1,000 levels of brackets) (rendering {label()}): flatten the template"
            )
        culprit = _culprit(params, lines, problem, self.parse, self.format)
        if culprit is None or culprit is _TEMPLATE:
            value = f" at '{_short(at.strip())}'" if at.strip() else ""
            fix = (
                "a string, dict, boolean or None param needs `{{ name | tojson }}` "
                f"to render as a {self.format} value"
            )
            if culprit is _TEMPLATE:  # `| tojson` would not mend it: the template's text is broken
                fix = (
                    f"the template itself is not valid {self.format} there "
                    "(`| tojson` on its params would not help): fix its text"
                )
        else:
            key, shown = culprit
            value = f": param {key} rendered as {_short(shown)}"
            fix = f"write {_tojson(key)} in the template to render it as a {self.format} value"
        raise BatchError(
            f"{where(problem.line)}: the rendered file is not valid {self.format} "
            f"({problem.message}){value} (rendering {label()}): {fix}"
        )


def checker(name: str) -> Checker | None:
    """The checker for a template named `name`, or None when its format is not checked."""
    for suffix, (fmt, make) in FORMATS.items():
        if name.lower().endswith(suffix):
            parse = make()
            misread = _yaml_misreads() if fmt == "YAML" else None
            return Checker(name, fmt, _depth_safe(parse), misread) if parse is not None else None
    return None


TOO_DEEP = "nested too deep to read"


def _depth_safe(parse: Callable[[str], Problem | None]) -> Callable[[str], Problem | None]:
    """`parse`, with text nested past the parser's depth (~1,000 levels of [ or { for json
    and tomllib) a Problem, not a RecursionError."""

    def check(text: str) -> Problem | None:
        try:
            return parse(text)
        except RecursionError:
            return Problem(1, 1, TOO_DEEP)

    return check


_TEMPLATE = ("", "")  # params render wrongly near the problem, but their JSON would not mend it


def _culprit(
    params: Mapping[str, Any],
    lines: list[str],
    problem: Problem,
    parse: Callable[[str], Problem | None],
    fmt: str,
) -> tuple[str, str] | None:
    """The param whose Jinja rendering is not a literal of the format, appears on the
    failing line (or next to it), and whose JSON there mends the text (or moves the problem
    further on): (name, what it rendered as). _TEMPLATE when suspects appear but none of
    them is it (the template's own text is broken), None when no suspect appears."""
    suspects = [(k, v, str(v)) for k, v in params.items() if _not_a_literal(v, fmt) and str(v)]
    i = problem.line - 1
    near = [n for n in (i, i - 1, i + 1) if 0 <= n < len(lines)] or [len(lines) - 1]
    seen = False
    for n in near:
        for key, value, shown in sorted(suspects, key=lambda s: -len(s[2])):
            if n < 0 or shown not in lines[n]:
                continue
            seen = True
            if _mends(lines, n, shown, value, problem, parse):
                return key, shown
    return _TEMPLATE if seen else None


def _mends(
    lines: list[str], n: int, shown: str, value: Any, problem: Problem, parse: Callable[[str], Problem | None]
) -> bool:
    """Does writing `value` as JSON in place of `shown` on line n parse, or move the problem on?"""
    try:
        literal = json.dumps(value)
    except (TypeError, ValueError):
        return True  # no JSON form to try: trust that it is the suspect
    fixed = [*lines[:n], lines[n].replace(shown, literal, 1), *lines[n + 1 :]]
    after = parse("\n".join(fixed) + "\n")
    if after is None:
        return True
    shift = max(len(literal) - len(shown), 0) if n == problem.line - 1 else 0
    return (after.line, after.column) > (problem.line, problem.column + shift)


def _not_a_literal(value: Any, fmt: str) -> bool:
    """Does Jinja's `{{ value }}` fail to be the value's literal in `fmt`?"""
    if isinstance(value, bool):
        return fmt != "YAML"  # YAML reads True/False; JSON and TOML want true/false
    if value is None or isinstance(value, str):
        return True  # None has no literal `None`; strings render without quotes
    if isinstance(value, (int, float)):
        return False
    try:  # a list of numbers renders as its JSON; one holding strings or a dict does not
        return str(value) != json.dumps(value)
    except (TypeError, ValueError):
        return True


def _kind(value: Any) -> str:
    return "None" if value is None else f"string {value!r}"


def _tojson(key: str) -> str:
    ref = key if key.isidentifier() else f"params[{key!r}]"
    return "{{ " + ref + " | tojson }}"


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
