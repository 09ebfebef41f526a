"""metarunlog.render: compile once, StrictUndefined, errors naming file and original line."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from metarunlog.batch import split_template
from metarunlog.errors import BatchError, MrlError
from metarunlog.render import command_template, compile_template, used_in_strings


def compiled(text: str, name: str = "conf.yaml"):  # type: ignore[no-untyped-def]
    return compile_template(split_template(name, text))


def test_a_template_renders_params_and_keeps_its_trailing_newline() -> None:
    t = compiled("lr: {{ lr }}\nname: {{ name }}\n# MRL:grid['lr'] = [1]\n")
    assert t.render({"lr": 0.1, "name": "run a"}) == "lr: 0.1\nname: run a\n"


def test_rendering_does_not_escape_html_characters() -> None:
    assert compiled("{{ s }}").render({"s": "<a & 'b'>"}) == "<a & 'b'>"


def test_an_undefined_variable_is_an_error_naming_it_and_its_original_line() -> None:
    t = compiled("# MRL:grid['lr'] = [1]\n# MRL:grid['wd'] = [2]\na: {{ lr }}\nb: {{ wdecay }}\n")
    with pytest.raises(BatchError) as e:
        t.render({"lr": 1, "wd": 2}, "sub-experiment 1")
    msg = str(e.value)
    assert msg.startswith("conf.yaml: line 4: 'wdecay' is undefined (rendering sub-experiment 1)")
    assert "--set" in msg


def test_an_undefined_variable_inside_a_block_names_its_line() -> None:
    t = compiled("x\n{% if a %}\n  {{ b }}\n{% endif %}\n")
    with pytest.raises(BatchError, match=r"line 3: 'b' is undefined"):
        t.render({"a": True})


def test_is_defined_tests_work_with_strict_undefined() -> None:
    t = compiled("{% if dropout is defined %}d={{ dropout }}{% else %}none{% endif %}")
    assert t.render({}) == "none" and t.render({"dropout": 0.5}) == "d=0.5"


def test_a_syntax_error_names_the_file_and_the_original_line() -> None:
    with pytest.raises(BatchError, match=r"^conf.yaml: line 3: template syntax error: "):
        compiled("# MRL:grid['x'] = [1]\nok {{ x }}\nbad {{ x }\n")


def test_a_failing_filter_is_an_error_naming_the_line() -> None:
    t = compiled("a\n{{ x / 0 }}\n")
    with pytest.raises(BatchError, match=r"^conf.yaml: line 2: ZeroDivisionError"):
        t.render({"x": 1})


def test_the_variables_a_template_reads_are_known_after_compiling() -> None:
    t = compiled("{% set y = 2 %}{{ x }} {{ y }} {% for i in items %}{{ i }}{% endfor %}")
    assert t.variables == {"x", "items"}


def test_variables_of_run_command_strings_are_found_and_bad_ones_ignored() -> None:
    assert used_in_strings(["python t.py --seed {{ repeat }}", "{{ broken", "echo {{subExpDir}}"]) == {
        "repeat",
        "subExpDir",
    }


# -- run.command: every value reaches /bin/sh as one argument -------------------------------------

ARGV = f"{shlex.quote(sys.executable)} -c 'import json, sys; print(json.dumps(sys.argv[1:]))'"
HOSTILE = [
    "a`touch pwned`b",
    "\\\\`\\$",
    "a b",
    "x;touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "line1\nline2",
    "it's",
    'say "hi"',
    "\\",
    "",
    "*",
]


def argv_of(command: str, variables: dict, cwd: Path) -> list[str]:
    """Render `command` and run it with /bin/sh as mrl does: the arguments the program got."""
    text = command_template(command, ".mrl.cfg").render(variables)
    proc = subprocess.run(["/bin/sh", "-c", text], cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    "command",
    [
        ARGV + " {{ v }}",  # bare
        ARGV + " --v={{ v }}",  # glued to a flag
        ARGV + ' "{{ v }}"',  # the user quoted it already
        ARGV + " '{{ v }}'",
        ARGV + ' "$(printf %s {{ v }})"',  # in a command substitution inside double quotes
        ARGV + " `printf %s {{ v }}`",  # in backquotes: split by the shell afterwards, but never run
        "x=`(" + ARGV + ' {{ v }})`; printf %s "$x"',  # a subshell inside backquotes
        'x=`printf %s "$(' + ARGV + ' {{ v }})"`; printf %s "$x"',  # "$(...)" inside backquotes
        ARGV + " {{ v }} # it's a comment with {{ v }}",
        ARGV + ' "$(cat <<EOF\n{{ v }}\nEOF\n)"',  # the body of a here-document: $ ` \\ expand there
        ARGV + " \"$(cat <<'EOF'\n{{ v }}\nEOF\n)\"",  # quoted delimiter: nothing expands
        ARGV + ' "$(cat <<-"E"OF\n{{ v }}\n\tEOF\n)"',
        "echo $((1<<2)) >/dev/null\n" + ARGV + " {{ v }}",  # a shift, not a here-document
    ],
)
def test_a_value_in_run_command_arrives_as_exactly_one_argument(command: str, value: str, tmp_path: Path) -> None:
    expected = "--v=" + value if "--v=" in command else value
    if "`" in command and "x=" not in command:  # unquoted `...` output is split into words, as the shell does
        assert argv_of(command, {"v": value}, tmp_path) == value.split()
        assert not (tmp_path / "pwned").exists()
        return
    if "printf" in command or "cat" in command:
        expected = value.rstrip("\n")  # $(...) drops trailing newlines, as the shell does
    assert argv_of(command, {"v": value}, tmp_path) == [expected]
    assert not (tmp_path / "pwned").exists()


def test_raw_opts_out_of_quoting_for_a_value_meant_to_be_split(tmp_path: Path) -> None:
    flags = "--a 1 --b 'two words'"
    assert argv_of(ARGV + " {{ flags | raw }} {{ x }}", {"flags": flags, "x": "y z"}, tmp_path) == [
        "--a",
        "1",
        "--b",
        "two words",
        "y z",
    ]


def test_numbers_and_plain_paths_render_as_before() -> None:
    text = command_template("python {{ d }}/train.py --lr {{ lr }} --n={{ n }}", "cfg").render(
        {"d": "/home/me/proj", "lr": 0.1, "n": 3}
    )
    assert text == "python /home/me/proj/train.py --lr 0.1 --n=3"


def test_a_path_with_a_space_is_one_argument() -> None:
    text = command_template("python {{ codeDir }}/train.py", "cfg").render({"codeDir": "/tmp/my proj"})
    assert shlex.split(text) == ["python", "/tmp/my proj/train.py"]


def test_a_filter_that_fails_in_run_command_is_a_user_error_naming_the_config() -> None:
    t = command_template("train {{ x / 0 }}", "/p/.mrl.cfg")
    with pytest.raises(MrlError, match=r"^run.command in /p/.mrl.cfg: ZeroDivisionError.*sub-experiment 002"):
        t.render({"x": 1}, sub="002")


def test_a_syntax_error_in_run_command_names_the_config_and_the_string() -> None:
    with pytest.raises(MrlError, match=r"^run.command in /p/.mrl.cfg: template syntax error: .* in 'train \{\{x'"):
        command_template("train {{x", "/p/.mrl.cfg")


def test_config_templates_are_not_shell_quoted() -> None:
    assert compiled("name = '{{ n }}'\n").render({"n": "a b; c"}) == "name = 'a b; c'\n"


SHELL_SPOTS = [
    "{{ v }}",
    '"$(cat <<E\nx{{ v }}y\nE\n)"',
    "\"$(cat <<'E'\nx{{ v }}y\nE\n)\"",
    "--v={{ v }}",
    '"{{ v }}"',
    "'{{ v }}'",
    'x"{{ v }}"y',
    "'a'{{ v }}\"b\"",
    '"$(printf %s {{ v }})"',
    '"`printf %s {{ v }}`"',
]


# Shell-special characters often, any other character sometimes.
SHELL_CHARS = st.sampled_from(list(" '\"\\$`;\n\t(){}[]|&<>*?#~=!%^-")) | st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\x00\ue000\ue001"
)


@settings(max_examples=300, deadline=None)
@given(value=st.text(SHELL_CHARS), spot=st.sampled_from(SHELL_SPOTS))
def test_any_value_in_any_quoting_context_is_one_argument_holding_it(value: str, spot: str) -> None:
    assume("<<" not in spot or "\nE\n" not in f"\n{value}\n")  # that one is refused (test below)
    text = command_template("printf '%s\\0' " + spot, "cfg").render({"v": value})
    out = subprocess.run(["/bin/sh", "-c", text], capture_output=True, check=True).stdout.decode()
    literal = spot.replace("{{ v }}", "\x01").replace('"', "").replace("'", "")
    expected = literal.replace("\x01", value)
    if "printf %s" in spot:
        expected = value.rstrip("\n")  # command substitution drops trailing newlines
    if "<<" in spot:
        expected = ("x" + value + "y").rstrip("\n")
    assert out.split("\0")[:-1] == [expected]


# -- run.command: {{ params | cli_args }} and {{ params | kv_args }} (issue 12) ---------------


def test_cli_args_turns_the_params_into_flags_each_one_argument(tmp_path: Path) -> None:
    params = {
        "lr": 0.1,
        "hidden": 16,
        "opt": "adam w",
        "early_stop": True,
        "debug": False,
        "ckpt": None,
        "layers": [512, 256],
        "empty": [],
        "cfg": {"a": 1},
        "model.dropout": 0.5,
        "learning-rate": 1e-05,
    }
    assert argv_of(ARGV + " {{ params | cli_args }}", {"params": params}, tmp_path) == [
        "--lr",
        "0.1",
        "--hidden",
        "16",
        "--opt",
        "adam w",
        "--early_stop",
        "--layers",
        "512",
        "256",
        "--cfg",
        '{"a":1}',
        "--model.dropout",
        "0.5",
        "--learning-rate",
        "1e-05",
    ]


def test_cli_args_values_that_start_with_a_dash_reach_a_real_argparse_script(tmp_path: Path) -> None:
    """`--shift -1e-05` or `--opt -x` is "expected one argument" for argparse (it reads the
    value as an option): such a value is passed as `--key=value`, which argparse, click and
    Hydra-style parsers all read."""
    script = tmp_path / "train.py"
    script.write_text(
        "import argparse, json\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--shift', type=float)\np.add_argument('--opt')\np.add_argument('--n', type=int)\n"
        "print(json.dumps(vars(p.parse_args())))\n"
    )
    command = f"{sys.executable} {script} {{{{ params | cli_args }}}}"
    text = command_template(command, "cfg").render({"params": {"shift": -1e-05, "opt": "-x y", "n": -3}})
    out = subprocess.run(["/bin/sh", "-c", text], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"shift": -1e-05, "opt": "-x y", "n": -3}


def test_cli_args_takes_a_prefix_and_leaves_out_excluded_params(tmp_path: Path) -> None:
    command = ARGV + " {{ params | cli_args(prefix='-', exclude=['repeat']) }}"
    assert argv_of(command, {"params": {"lr": 1, "repeat": 2}}, tmp_path) == ["-lr", "1"]


def test_kv_args_gives_hydra_style_key_value_words(tmp_path: Path) -> None:
    params = {"lr": 0.1, "opt": "a b;$(touch pwned)", "flag": True, "none": None, "layers": [512, 512]}
    assert argv_of(ARGV + " {{ params | kv_args }}", {"params": params}, tmp_path) == [
        "lr=0.1",
        "opt=a b;$(touch pwned)",
        "flag=true",
        "none=null",
        "layers=[512,512]",
    ]
    assert not (tmp_path / "pwned").exists()
    assert argv_of(ARGV + " {{ params | kv_args(prefix='+') }}", {"params": {"x": 1}}, tmp_path) == ["+x=1"]


# Where the words of cli_args/kv_args reach a second shell: `sh -c '...'`, `srun bash -c
# "..."`, backquotes, a here-document fed to a shell, eval; or sit in a comment. They were
# pasted as they are: inside "..." the outer shell ran `$(...)` of a value, inside '...' its
# quotes ended the string, a newline in a value ended a comment and ran the rest.
NESTED_SPOTS = {
    "sh -c '...'": "sh -c '{argv} {w}'",
    'sh -c "..."': 'sh -c "{argv} {w}"',
    "backquotes": 'printf %s "`{argv} {w}`"',
    # the backquotes are read first, their \\ \\$ \\` taken off, whatever quoting is inside
    "sh -c '...' in backquotes": "x=`sh -c '{argv} {w}'`; printf %s \"$x\"",
    "a subshell in backquotes": 'x=`({argv} {w})`; printf %s "$x"',
    "here-document to sh": "sh <<EOF\n{argv} {w}\nEOF",
    "quoted here-document to sh": "sh <<'EOF'\n{argv} {w}\nEOF",
    "eval": 'eval "{argv} {w}"',
    "comment": "{argv} 1 # {w}",
}


@settings(max_examples=150, deadline=None)
@given(
    value=st.text(SHELL_CHARS, max_size=12),
    spot=st.sampled_from(sorted(NESTED_SPOTS)),
    kv=st.booleans(),
)
def test_cli_and_kv_args_words_reach_a_nested_shell_exactly_and_never_run_a_value(
    value: str, spot: str, kv: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assume("EOF" not in value)  # a value holding the delimiter line is refused (test above)
    d = tmp_path_factory.mktemp("nested")
    (d / "argv.py").write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    argv = f"{sys.executable} argv.py"
    words = "{{ params | kv_args }}" if kv else "{{ params | cli_args }}"
    text = command_template(NESTED_SPOTS[spot].format(argv=argv, w=words), ".mrl.cfg").render(
        {"params": {"opt": value, "n": 1}}
    )
    out = subprocess.run(["/bin/sh", "-c", text], cwd=d, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, (text, out.stderr)
    if spot == "comment":
        expected = ["1"]
    elif kv:
        expected = [f"opt={value}", "n=1"]
    else:
        expected = [f"--opt={value}"] if value.startswith("-") else ["--opt", value]
        expected += ["--n", "1"]
    assert json.loads(out.stdout) == expected, text
    assert sorted(p.name for p in d.iterdir()) == ["argv.py"]


@pytest.mark.parametrize("spot", sorted(set(NESTED_SPOTS) - {"comment"}))
@pytest.mark.parametrize("value", HOSTILE)
def test_word_makes_a_value_one_argument_of_a_nested_shell(spot: str, value: str, tmp_path: Path) -> None:
    if "here-document" in spot and "\nEOF\n" in f"\n{value}\n":
        return
    (tmp_path / "argv.py").write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    command = NESTED_SPOTS[spot].format(argv=f"{sys.executable} argv.py", w="--opt {{ opt | word }}")
    assert argv_of(command, {"opt": value}, tmp_path) == ["--opt", value]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["argv.py"]


def test_cli_args_of_something_else_than_the_params_is_a_user_error() -> None:
    with pytest.raises(MrlError, match=r"cli_args takes the params dict"):
        command_template("run {{ lr | cli_args }}", ".mrl.cfg").render({"lr": 0.1})


def test_the_run_command_gets_the_params_dict() -> None:
    assert (
        command_template("run {{ params['model.dropout'] }}", ".mrl.cfg").render({"params": {"model.dropout": 0.5}})
        == "run 0.5"
    )


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab }%#\\\"'$()`\n\t;|&<>*?!-=_./09\r{\ue000")), min_size=1, max_size=30))
def test_a_command_without_jinja_syntax_renders_exactly_as_jinja_would(source: str) -> None:
    from metarunlog.render import CommandTemplate, command_environment, is_literal, shell_quote_outputs

    if not source.strip() or not is_literal(source):
        return
    assert command_template(source, "w").template is None  # never compiled
    jinja = CommandTemplate(source, "w", command_environment().from_string(source))
    assert command_template(source, "w").render({"x": 1}) == jinja.render({"x": 1})
    assert shell_quote_outputs(source) == source


def test_a_command_with_jinja_syntax_trailing_newline_or_cr_is_compiled() -> None:
    from metarunlog.render import is_literal

    assert is_literal("python train.py --lr 0.1 # note") and is_literal("echo %s }}")
    for source in ("echo {{x}}", "{% if 1 %}a{% endif %}", "a {# c #}", "a\n", "a\r\nb", "echo ${HOME}"):
        assert not is_literal(source)
        assert command_template(source, "w").template is not None


def test_a_command_without_jinja_syntax_is_rendered_without_importing_jinja(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from metarunlog.render import command_template\n"
        "t = command_template('python train.py conf.lua', 'w')\n"
        "assert t.render({}) == 'python train.py conf.lua'\n"
        "print('jinja2' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert out.stdout.strip() == "False"


def test_a_value_that_would_end_its_here_document_early_is_an_error_not_a_command() -> None:
    template = command_template("cat > conf.yaml <<EOF\nname: {{ v }}\nEOF\n", ".mrl.cfg")
    with pytest.raises(MrlError, match="would end the here-document"):
        template.render({"v": "x\nEOF\ntouch pwned"})
