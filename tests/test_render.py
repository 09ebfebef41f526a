"""metarunlog.render: compile once, StrictUndefined, errors naming file and original line."""

from __future__ import annotations

import pytest

from metarunlog.batch import split_template
from metarunlog.errors import BatchError
from metarunlog.render import compile_template, used_in_strings


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
