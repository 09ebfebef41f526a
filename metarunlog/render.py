"""The one Jinja home: config templates, `run.command` and the report's page templates.

Three environments, one per kind of output, built here with the same base (StrictUndefined:
a typo in `{{ lr }}` never renders as an empty string) and one error translator
(`template_error`), so every Jinja error reaches the user as an MrlError naming the file
and the line:

- config templates (conf.lua, conf.json...): text files, rendered as written (no escaping,
  no quoting), compiled once and rendered once per sub-experiment (`compile_template`);
- `run.command` (`command_template`): shell text, where every `{{ ... }}` value is quoted
  for `/bin/sh` (it always arrives as one argument, whatever it holds) unless it went
  through `| raw`; see `shell_quote_outputs`;
- the report (`report_environment`): HTML, autoescaped, loaded from `mrl_templates/` of the
  project first, then the templates shipped in `metarunlog/templates/`, which a user file
  can also reach as `default:NAME` (`{% extends "default:report.html" %}`).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarunlog.errors import BatchError, MrlError

if TYPE_CHECKING:
    import jinja2

    from metarunlog.batch import Template

# Variables every template sees besides the params (see docs/makebatch.md).
BUILTINS = ("expId", "subExpId", "subExpNum", "expDir", "subExpDir", "codeDir")
# ... and `run.command` also sees the slot's resource and all the params as `params`
# (docs/running.md).
COMMAND_BUILTINS = (*BUILTINS, "resource", "params")
# Names Jinja itself gives every template: its globals (jinja2.Environment().globals, checked
# by a test), the `loop` of a for-loop and `self` (the template's blocks). A variable of
# one of these names hides the global (`range(3)` fails) or is hidden by it (`{{ self }}`,
# `{{ loop }}` inside a for), silently: no param may take one (batch.reserved_names).
JINJA_NAMES = ("range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop", "self")

USER_TEMPLATES = "mrl_templates"  # <basedir>/mrl_templates/: the user's report templates
DEFAULT_PREFIX = "default"  # "default:report.html" is always the shipped one
SHIPPED = Path(__file__).resolve().parent / "templates"


def _environment(**options: Any) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, **options)
    env.filters["tojson"] = _tojson_of(env.filters["tojson"])
    return env


def _tojson_of(tojson: Callable[..., Any]) -> Callable[..., Any]:
    """Jinja's `tojson`, but `{{ name | tojson }}` of an undefined name is the usual
    "'name' is undefined" error (Jinja's own gives "Object of type StrictUndefined is not JSON
    serializable", which names neither the variable nor the fix)."""
    import jinja2

    @jinja2.pass_eval_context
    def checked(eval_ctx: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()
        return tojson(eval_ctx, value, *args, **kwargs)

    return checked


# -- the one error translator ------------------------------------------------------------------

Locate = Callable[[str, "int | None"], str]  # (template file name, its line) -> "where" text


def _file_line(filename: str, line: int | None) -> str:
    return f"{filename}: line {line}" if line else filename


def template_error(
    e: BaseException,
    locate: Locate = _file_line,
    *,
    context: str = "",
    hint: str = "",
    error: type[MrlError] = MrlError,
) -> MrlError:
    """A Jinja error (syntax, undefined, or anything a filter raised) as one user error.

    `locate(filename, line)` says where (each kind of template names its files its own
    way); `context` follows the message (what was being rendered), `hint` how to fix an
    undefined variable.
    """
    import jinja2

    if isinstance(e, jinja2.TemplateSyntaxError):
        return error(f"{locate(e.filename or e.name or '?', e.lineno)}: template syntax error: {e.message}{context}")
    filename, line = template_frame(e)
    at = locate(filename, line)
    if isinstance(e, jinja2.UndefinedError):
        return error(f"{at}: {e.message}{context}" + (f"; {hint}" if hint else ""))
    return error(f"{at}: {type(e).__name__}: {e}{context}")


def template_frame(e: BaseException) -> tuple[str, int | None]:
    """(file, line) of the innermost template frame of a render error: Jinja rewrites the
    traceback so that template frames carry the template's file name and line (and mark
    their globals with `__jinja_exception__`)."""
    found: tuple[str, int | None] = ("?", None)
    tb = e.__traceback__
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


# -- config templates ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The environment of config templates: text as written, ending like its template."""
    return _environment(keep_trailing_newline=True, autoescape=False)


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
            label = label() if callable(label) else label
            raise template_error(
                e,
                _in_body_of(self.source),
                context=f" (rendering {label})" if label else "",
                hint=_dotted_hint(e, variables)
                or (
                    f"define it with an MRL:grid/params line or --set, give it a default "
                    f"({{{{ name | default(...) }}}}), or use one of {', '.join(BUILTINS)}"
                ),
                error=BatchError,
            ) from e


def _dotted_hint(e: Exception, variables: Mapping[str, Any]) -> str:
    """`{{ model.dropout }}` reads an attribute of `model`: point at the param of that name."""
    m = re.match(r"'([^']+)' is undefined", str(getattr(e, "message", "") or ""))
    if m is None:
        return ""
    near = [k for k in variables if k.startswith((m.group(1) + ".", m.group(1) + "-"))]
    if not near:
        return ""
    return f"the param {near[0]} is reached as {{{{ params[{near[0]!r}] }}}}"


def _in_body_of(source: Template) -> Locate:
    """Locate in a template whose body has its MRL lines removed: the line of the user's file."""

    def locate(filename: str, line: int | None) -> str:
        return _file_line(source.name, source.original_line(line) if filename == source.name else None)

    return locate


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
        raise template_error(e, _in_body_of(source), error=BatchError) from None
    template = env.template_class.from_code(env, code, env.make_globals(None), None)
    used = frozenset(meta.find_undeclared_variables(tree))
    return Compiled(name, source, template, used)


# -- plain strings of the config (run.slurm values) -------------------------------------------


def is_template(text: str) -> bool:
    """True when `text` holds Jinja (`{{`, `{%`): only then is it compiled."""
    return "{{" in text or "{%" in text


@dataclass
class StringTemplate:
    """A config value that is Jinja over params (`run.slurm.mem`), rendered as plain text."""

    source: str
    where: str  # what it is, for messages: "run.slurm.mem in /p/.mrl.cfg"
    template: jinja2.Template

    def render(self, variables: Mapping[str, Any], *, sub: str = "") -> str:
        try:
            return self.template.render(variables).strip()
        except Exception as e:  # UndefinedError, or whatever a filter raised
            raise template_error(
                e,
                lambda _, __: self.where,
                context=f" (rendering it for sub-experiment {sub})" if sub else "",
                hint=f"the variables are the params and {', '.join(BUILTINS)}",
            ) from e


def string_template(source: str, where: str) -> StringTemplate:
    """Compile one Jinja config value; a syntax error is an MrlError naming `where`."""
    return StringTemplate(source, where, _from_string(environment(), source, where))


def _from_string(env: jinja2.Environment, source: str, where: str) -> jinja2.Template:
    """`source` compiled in `env`; a syntax error is an MrlError naming `where`."""
    import jinja2

    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise template_error(e, lambda _, __: where, context=f" in {source!r}") from None


# -- run.command: shell text ------------------------------------------------------------------


class Shell(str):
    """Text meant for the shell as it is (`| raw`, or a filter that quotes its own parts):
    `run.command` does not quote it."""


class Words(Shell):
    """Shell words quoted for the shell that parses them (`cli_args`, `kv_args`): as they
    are where the command's own shell reads words; inside '...', "...", backquotes or a
    here-document the text reaches another parser (`sh -c '...'`, `srun bash -c "..."`,
    `sh <<EOF`), so there it is escaped for that context and that parser gets the words."""


def raw(value: Any) -> Shell:
    """`{{ flags | raw }}`: the value reaches /bin/sh unquoted, to be split into words."""
    return Shell(value)


def cli_args(params: Mapping[str, Any], prefix: str = "--", exclude: Iterable[str] | str = ()) -> Words:
    """`{{ params | cli_args }}`: `--lr 0.1 --hidden 16`, every word shell-quoted (argparse,
    click). True is a bare flag (`--early_stop`); False and None are left out; a list is
    the flag then each value as its own word (`--layers 512 512`: argparse `nargs='+'`; an
    empty list is left out); a dict is one JSON word; a value starting with `-` is one word
    `--key=value` (argparse would take `-x` for an option). `exclude` leaves params out."""
    skip = {exclude} if isinstance(exclude, str) else set(exclude)
    words: list[str] = []
    for key, value in _items(params, "cli_args"):
        if key in skip or value is None or value is False:
            continue
        if value is True:
            words.append(prefix + key)
        elif isinstance(value, (list, tuple)):
            words += [prefix + key, *(_word(v) for v in value)] if value else []
        elif (word := _word(value)).startswith("-"):  # `--shift -1e-05`: argparse reads an option
            words.append(f"{prefix}{key}={word}")
        else:
            words += [prefix + key, word]
    return Words(" ".join(shlex.quote(w) for w in words))


def kv_args(params: Mapping[str, Any], prefix: str = "", exclude: Iterable[str] | str = ()) -> Words:
    """`{{ params | kv_args }}`: `lr=0.1 hidden=16`, each `key=value` one shell-quoted word
    (Hydra, mlxm). True/False/None are `true`/`false`/`null`; lists and dicts are compact
    JSON (`layers=[512,512]`). `prefix='+'` gives Hydra's `+key=value`."""
    skip = {exclude} if isinstance(exclude, str) else set(exclude)
    words = [f"{prefix}{k}={_word(v)}" for k, v in _items(params, "kv_args") if k not in skip]
    return Words(" ".join(shlex.quote(w) for w in words))


def word(value: Any) -> Words:
    """`{{ opt | word }}`: the value as one shell word for the shell that reads it, also a
    nested one: in `sh -c '... --opt {{ opt | word }}'` the inner shell gets one argument
    (a bare `{{ opt }}` there is exactly the value in the outer string, the inner shell's text)."""
    return Words(shlex.quote(_word(value)))


def _items(params: Any, name: str) -> list[tuple[str, Any]]:
    if not isinstance(params, Mapping):
        raise TypeError(f"{name} takes the params dict: {{{{ params | {name} }}}}, not {type(params).__name__}")
    return [(str(k), v) for k, v in params.items()]


def _word(value: Any) -> str:
    """One value as command-line text: strings and numbers as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


# Filters of `run.command` only; a filter that builds several arguments quotes each part
# itself and returns Shell.
COMMAND_FILTERS: dict[str, Callable[..., Any]] = {"raw": raw, "cli_args": cli_args, "kv_args": kv_args, "word": word}

# Each quoted value leaves Jinja wrapped in these two private-use characters; once the
# whole command is rendered, `shell_quote_outputs` quotes it for where it landed.
# Words (cli_args, kv_args) open with two: no value holds one (they are taken out).
_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKERS = re.compile(f"[{_OPEN}{_CLOSE}]")


def _mark(value: Any) -> str:
    if isinstance(value, Words):
        return f"{_OPEN}{_OPEN}{_MARKERS.sub('', str(value))}{_CLOSE}"
    if isinstance(value, Shell):
        return str(value)
    return f"{_OPEN}{_MARKERS.sub('', str(value))}{_CLOSE}"


@lru_cache(maxsize=1)
def command_environment() -> jinja2.Environment:
    """The environment of `run.command`: every output marked for shell quoting."""
    env = _environment(keep_trailing_newline=False, autoescape=False, finalize=_mark)
    env.filters.update(COMMAND_FILTERS)
    return env


def shell_quote_outputs(text: str) -> str:
    """Replace each marked value by itself quoted for the shell context it landed in.

    The literal text around is shell syntax the user wrote: a value outside quotes gets
    `shlex.quote`; inside '...' its single quotes are closed and reopened; inside "..."
    the characters special there (\\ " $ `) are backslash-escaped; inside `$(...)` the
    quoting starts over (inside backquotes too, then escaped for them); in the body of a
    here-document (`<<EOF`) the characters it expands (\\ $ `) are escaped, and in one whose
    delimiter is quoted (`<<'EOF'`) the value is written as it is. So `--name={{ n }}`,
    `--name "{{ n }}"`, `'{{ codeDir }}/train.py'` and `lr: {{ lr }}` in a here-document all
    give exactly the value. A value holding a line that would end its here-document is an error.
    """
    out: list[str] = []
    sh = _Shell()
    i = 0
    while i < len(text):
        if text[i] == _OPEN:
            end = text.index(_CLOSE, i)
            value = text[i + 1 : end]
            words = value.startswith(_OPEN)
            out.append(sh.quote(value[1:] if words else value, "".join(out[-50:]), words=words))
            i = end + 1
        else:
            step = sh.step(text, i)
            out.append(text[i : i + step])
            i += step
    return "".join(out)


# `<<EOF`, `<<-EOF`, `<< 'EOF'`, `<<"E"OF`: a here-document's operator and its delimiter word
_HEREDOC = re.compile(r"<<(-?)[ \t]*((?:[^\s;&|<>()\\'\"]|\\.|'[^']*'|\"[^\"]*\")+)")


@dataclass
class _Shell:
    """How far the shell's quoting got: a stack of contexts, cmd (unquoted), sq '...',
    dq "...", bq `...`, comment (# to the end of the line), hd / hq (the body of a
    here-document, expanding or not), and the here-documents whose bodies start at the
    next newline."""

    stack: list[str] = field(default_factory=lambda: ["cmd"])
    heredocs: list[tuple[str, bool, bool]] = field(default_factory=list)  # (delimiter, quoted, strip tabs)
    delimiters: list[tuple[str, bool]] = field(default_factory=list)  # of the open bodies

    def step(self, text: str, i: int) -> int:
        """Follow the shell over the literal character(s) at `i`: how many were read."""
        state = self.stack[-1]
        if state in ("hd", "hq") and (i == 0 or text[i - 1] == "\n"):
            line = text[i:].split("\n", 1)[0]
            delimiter, strip = self.delimiters[-1]
            if (line.lstrip("\t") if strip else line) == delimiter:
                self.stack.pop()
                self.delimiters.pop()
                self._open_heredoc()
                return len(line) + (1 if i + len(line) < len(text) else 0)
        if state == "hq" or (state == "hd" and text[i] not in "\\`$"):
            return 1
        if state == "arith":  # $(( ... )): `<<` there is a shift, not a here-document
            if text.startswith("))", i):
                self.stack.pop()
                return 2
            return 1
        if state != "sq" and state != "comment" and text.startswith("$((", i):
            self.stack.append("arith")
            return 3
        if state == "cmd" and text[i] == "\n" and self.heredocs:
            self._open_heredoc()
            return 1
        if state == "cmd" and text.startswith("<<", i) and not text.startswith("<<<", i):
            m = _HEREDOC.match(text, i)
            if m and _OPEN not in m.group(2):
                word = m.group(2)
                quoted = any(c in word for c in "'\"\\")
                self.heredocs.append((re.sub(r"\\(.)|['\"]", r"\1", word), quoted, m.group(1) == "-"))
                return m.end() - i
        return _shell_step(self.stack, text, i)

    def _open_heredoc(self) -> None:
        """The body of the next pending here-document starts here."""
        if self.heredocs:
            delimiter, quoted, strip = self.heredocs.pop(0)
            self.stack.append("hq" if quoted else "hd")
            self.delimiters.append((delimiter, strip))

    def quote(self, value: str, before: str, *, words: bool = False) -> str:
        """`value` quoted for where it lands; `words` (cli_args): shell words already.
        Inside backquotes, at any depth (`sh -c '...'` or `$(...)` in `...`), the shell
        takes one level of \\ \\` \\$ off the text first, whatever quoting is inside: a
        value's backquote ended the substitution there, so each enclosing `...` escapes once."""
        quoted = self._quote_here(value, before, words)
        for _ in range(self.stack.count("bq")):
            quoted = _backslashed(quoted)
        return quoted

    def _quote_here(self, value: str, before: str, words: bool) -> str:
        state = self.stack[-1]
        if state in ("hd", "hq"):
            delimiter, strip = self.delimiters[-1]
            lines = (before.rsplit("\n", 1)[-1] + value).split("\n")
            if any((line.lstrip("\t") if strip else line) == delimiter for line in lines):
                raise MrlError(
                    f"a value holds the line {delimiter!r}, which would end the here-document "
                    f"<<{delimiter} of run.command early: change the value, or the delimiter"
                )
            return value if state == "hq" else _backslashed(value)
        if words and state in ("cmd", "arith", "bq"):
            return value
        return _quote_for(state, value)


def _shell_step(stack: list[str], text: str, i: int) -> int:
    """Follow the shell's quoting over the literal character(s) at `i`: how many were read."""
    c, state = text[i], stack[-1]
    if state == "comment" or state == "sq":
        if c == ("\n" if state == "comment" else "'"):
            stack.pop()
        return 1
    if c == "\\":  # escapes the next character, unless that is a value (it is quoted whole)
        return 1 if text[i + 1 : i + 2] == _OPEN else 2
    if c == "`" and state == "bq":
        stack.pop()
    elif c == "`":
        stack.append("bq")
    elif text.startswith("$(", i):
        stack.append("cmd")
        return 2
    elif state == "hd":  # \\ and $ in a here-document's body: escapes and expansions only
        return 1
    elif state == "dq":
        if c == '"':
            stack.pop()
    elif c in "'\"":
        stack.append("sq" if c == "'" else "dq")
    elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|("):
        stack.append("comment")
    elif c == "(":
        stack.append("cmd")
    elif c == ")" and state == "cmd" and len(stack) > 1:
        stack.pop()
    return 1


def _backslashed(text: str) -> str:
    """`text` with \\ ` $ escaped: what backquotes and a here-document's body take off."""
    return re.sub(r"([\\`$])", r"\\\1", text)


def _quote_for(state: str, value: str) -> str:
    if state == "comment":  # inert, unless a newline ended the comment
        return value.replace("\n", " ")
    if state == "sq":
        return value.replace("'", "'\\''")
    if state == "dq":
        return re.sub(r'([\\"$`])', r"\\\1", value)
    return shlex.quote(value)


@dataclass
class CommandTemplate:
    """One `run.command` string (or step), compiled once and rendered per sub-experiment."""

    source: str
    where: str  # the config file it came from, for messages
    template: jinja2.Template | None  # None: no Jinja syntax, the source renders as itself
    key: str = "run.command"  # the config key it is (run.after), for messages

    def render(
        self, variables: Mapping[str, Any], *, sub: str = "", params: Iterable[str] = (), only: bool = False
    ) -> str:
        """The shell text for one sub-experiment (`sub` names it and `params` lists its
        params in messages); an undefined variable or a failing filter is an MrlError.
        `only`: `variables` are all there are (run.after, the experiment's: no params)."""
        if self.template is None:
            return self.source
        try:
            return shell_quote_outputs(self.template.render(variables))
        except Exception as e:  # UndefinedError, or whatever a filter raised
            names = ", ".join(sorted(params)) or "none"
            raise template_error(
                e,
                lambda _, __: f"{self.key} in {self.where}",
                context=f" (rendering sub-experiment {sub})" if sub else "",
                hint=f"the variables are {', '.join(sorted(variables))}"
                if only
                else f"the variables are the params ({names}) and {', '.join(COMMAND_BUILTINS)}",
            ) from e


def command_template(source: str, where: object, key: str = "run.command") -> CommandTemplate:
    """Compile one `run.command` string (or another shell command of the config, `key`);
    a syntax error is an MrlError naming `key` and `where`."""
    if is_literal(source):  # nothing to compile, nor to import Jinja for (`mrl run` start-up)
        return CommandTemplate(source, str(where), None, key)
    template = _from_string(command_environment(), source, f"{key} in {where}")
    return CommandTemplate(source, str(where), template, key)


def is_literal(source: str) -> bool:
    """True when the command environment would render `source` as itself: no `{` (every
    Jinja tag, expression and comment starts with one), no `\\r` (Jinja turns `\\r\\n` into
    `\\n`), no trailing newline (Jinja drops one), no quoting marker."""
    return not source.endswith("\n") and not any(c in source for c in ("{", "\r", _OPEN, _CLOSE))


def used_in_strings(texts: Iterable[str]) -> frozenset[str]:
    """Variables read by Jinja strings such as `run.command` steps (unparsable ones: none)."""
    import jinja2
    from jinja2 import meta

    env = command_environment()
    used: set[str] = set()
    for text in texts:
        try:
            used |= meta.find_undeclared_variables(env.parse(text))
        except jinja2.TemplateSyntaxError:
            continue  # `mrl run` reports it; here it only decides a warning
    return frozenset(used)


# -- the report's templates -------------------------------------------------------------------


def report_environment(
    basedir: Path | None,
    filters: Mapping[str, Callable[..., Any]] | None = None,
    inline: Mapping[str, str] | None = None,
) -> Any:
    """HTML templates, autoescaped: `<basedir>/mrl_templates/NAME` replaces the shipped
    `NAME`; `default:NAME` is always the shipped one, so a user file can extend it
    (datasette's ChoiceLoader + PrefixLoader). `inline`: more shipped templates, as
    name -> text (those of report sections registered from code)."""
    import jinja2

    shipped: jinja2.BaseLoader = jinja2.PackageLoader("metarunlog", "templates")
    if inline:
        shipped = jinja2.ChoiceLoader([shipped, jinja2.DictLoader(dict(inline))])
    loaders: list[jinja2.BaseLoader] = []
    if basedir is not None and (basedir / USER_TEMPLATES).is_dir():
        loaders.append(jinja2.FileSystemLoader(str(basedir / USER_TEMPLATES)))
    loaders += [jinja2.PrefixLoader({DEFAULT_PREFIX: shipped}, delimiter=":"), shipped]
    env = _environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(),
    )
    env.filters.update(filters or {})
    return env


@lru_cache(maxsize=1)
def _bytecode_cache() -> Any:
    """The report templates compiled once and kept (Jinja's cache in a folder of the
    user's own under the temp dir, each entry checked against its template's source):
    compiling the page's dozen templates took ~0.06 s of every `mrl analyze`. None when
    that folder cannot be had; a cache that cannot be read or written is skipped."""
    import jinja2

    class Quiet(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # a torn or foreign file: compile as if there were none
                bucket.reset()

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            with contextlib.suppress(OSError):  # a full or read-only temp dir: just no cache
                super().dump_bytecode(bucket)

    try:
        return Quiet()
    except (OSError, RuntimeError):  # RuntimeError: jinja finds the folder unsafe (not the user's own)
        return None


def render_page(env: Any, name: str, context: Mapping[str, Any]) -> str:
    """Render the report template `name`. An error in a user's template (mrl_templates/)
    is an MrlError naming its file and line; one in ours is a bug and raised as it is."""
    import jinja2

    try:
        return str(env.get_template(name).render(context))
    except jinja2.TemplateNotFound as e:
        raise MrlError(f"report template {e.name} not found (in {USER_TEMPLATES}/ or the shipped ones)") from e
    except Exception as e:
        filename = e.filename if isinstance(e, jinja2.TemplateSyntaxError) else template_frame(e)[0]
        if not _users(filename):
            raise
        raise template_error(e, lambda f, line: f"{f}:{line}" if line else f) from e


def _users(filename: str | None) -> bool:
    """A template file of the user's, not one shipped with mrl (or carried by its code)."""
    if not filename or filename.startswith("<") or filename == "?":
        return False
    return not Path(filename).resolve().is_relative_to(SHIPPED)
