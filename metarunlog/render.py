"""The Jinja environment for config templates, and rendering with errors that name file+line.

Templates are compiled once and rendered once per sub-experiment. Undefined variables
are errors (StrictUndefined): a typo in `{{ lr }}` never renders as an empty string.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from metarunlog.errors import BatchError

if TYPE_CHECKING:
    import jinja2

    from metarunlog.batch import Template

# Variables every template sees besides the params (see docs/makebatch.md).
BUILTINS = ("expId", "subExpId", "expDir", "subExpDir", "codeDir")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,  # a rendered file ends like its template
        autoescape=False,
    )


@dataclass
class Compiled:
    """A template compiled once: render it with `render(variables)`."""

    name: str
    source: Template
    template: jinja2.Template
    variables: frozenset[str]  # the names the template reads from its context

    def render(self, variables: Mapping[str, Any], label: str | Callable[[], str] = "") -> str:
        """The rendered text; an undefined variable or a failing filter is a BatchError.

        `label` (or a function making it, called only on error) says what was rendered.
        """
        try:
            return self.template.render(variables)
        except Exception as e:  # jinja2 raises many types at render time (UndefinedError, TypeError...)
            raise self._error(e, label() if callable(label) else label) from e

    def _error(self, e: Exception, label: str) -> BatchError:
        import jinja2

        line = self.source.original_line(_template_lineno(e, self.name))
        at = f"{self.name}: line {line}" if line else self.name
        ctx = f" (rendering {label})" if label else ""
        if isinstance(e, jinja2.UndefinedError):
            return BatchError(
                f"{at}: {e.message}{ctx}: define it with an MRL:grid/params line or "
                f"--set, or use one of {', '.join(BUILTINS)}"
            )
        return BatchError(f"{at}: {type(e).__name__}: {e}{ctx}")


def compile_template(source: Template) -> Compiled:
    """Compile a template's body (its MRL lines removed); a syntax error names file+line."""
    import jinja2
    from jinja2 import meta

    env = environment()
    name = source.name
    try:
        tree = env.parse(source.body, name=name, filename=name)
        code = env.compile(tree, name=name, filename=name)
    except jinja2.TemplateSyntaxError as e:
        line = source.original_line(e.lineno)
        raise BatchError(f"{name}: line {line}: template syntax error: {e.message}") from None
    template = env.template_class.from_code(env, code, env.make_globals(None), None)
    used = frozenset(meta.find_undeclared_variables(tree))
    return Compiled(name, source, template, used)


def _template_lineno(e: BaseException, filename: str) -> int | None:
    """The template line a render error happened at: Jinja rewrites the traceback so that
    frames of the template carry its file name and line."""
    tb = e.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def used_in_strings(texts: Iterable[str]) -> frozenset[str]:
    """Variables read by Jinja strings such as `run.command` steps (unparsable ones: none)."""
    import jinja2
    from jinja2 import meta

    env = environment()
    used: set[str] = set()
    for text in texts:
        try:
            used |= meta.find_undeclared_variables(env.parse(text))
        except jinja2.TemplateSyntaxError:
            continue  # `mrl run` reports it; here it only decides a warning
    return frozenset(used)
