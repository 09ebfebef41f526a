"""metarunlog/formats.py: a rendered .json/.yaml/.toml file is parsed before makebatch writes
anything, and a failure names the file, the line, the param and the fix (`| tojson`)."""

from __future__ import annotations

import pytest

from metarunlog.errors import BatchError
from metarunlog.formats import checker


def check(name: str, text: str, **params: object) -> str:
    """The BatchError message for `text` rendered from template `name` ('' when it parses)."""
    found = checker(name)
    assert found is not None
    try:
        found.check(text, params, lambda line: f"{name}:{line}", lambda: "sub-experiment 002")
    except BatchError as e:
        return str(e)
    return ""


@pytest.mark.parametrize(
    ("name", "fmt"), [("cfg.json", "JSON"), ("A.YAML", "YAML"), ("x.yml", "YAML"), ("pyproject.toml", "TOML")]
)
def test_each_checked_format_is_chosen_by_the_file_suffix_in_any_case(name: str, fmt: str) -> None:
    found = checker(name)
    assert found is not None and found.format == fmt and found.name == name


@pytest.mark.parametrize("name", ["conf.lua", "train.sh", "json", "config.json.j2"])
def test_other_files_are_not_checked(name: str) -> None:
    assert checker(name) is None


def test_valid_rendered_files_pass() -> None:
    assert check("c.json", '{"lr": 0.1, "opt": "adam", "layers": [1, 2]}', lr=0.1, opt="adam") == ""
    assert check("c.yaml", "lr: 0.1\nopt: adam\nflag: True\n", opt="adam", flag=True) == ""
    assert check("c.toml", 'lr = 0.1\nopt = "adam"\n', opt="adam") == ""


def test_a_bare_string_in_json_names_the_param_and_the_tojson_fix() -> None:
    msg = check("c.json", '{\n  "lr": 0.1,\n  "opt": adam\n}\n', lr=0.1, opt="adam")
    assert msg.startswith("c.json:3: the rendered file is not valid JSON (")
    assert ": param opt rendered as adam (rendering sub-experiment 002)" in msg
    assert msg.endswith("write {{ opt | tojson }} in the template to render it as a JSON value")


def test_a_python_bool_or_none_or_dict_in_json_is_named() -> None:
    assert "param flag rendered as True" in check("c.json", '{"flag": True}', flag=True)
    assert "param w rendered as None" in check("c.json", '{"w": None}', w=None)
    msg = check("c.json", "{\"opt\": {'a': 1}}", opt={"a": 1})
    assert "param opt rendered as {'a': 1}" in msg


def test_a_param_whose_name_is_not_an_identifier_gets_the_params_lookup_in_the_fix() -> None:
    msg = check("c.json", '{"opt": adam}', **{"optim-name": "adam"})
    assert "write {{ params['optim-name'] | tojson }}" in msg


def test_a_list_of_numbers_renders_as_its_json_and_is_never_the_culprit() -> None:
    msg = check("c.json", '{"layers": [1, 2], "opt": adam}', layers=[1, 2], opt="adam")
    assert "param opt" in msg and "param layers" not in msg


def test_a_syntax_error_no_param_explains_quotes_the_line_and_gives_the_general_fix() -> None:
    msg = check("c.json", '{"lr": 0.1,,}', lr=0.1)
    assert "at '{\"lr\": 0.1,,}'" in msg
    assert "needs `{{ name | tojson }}` to render as a JSON value" in msg


def test_toml_wants_true_not_python_true() -> None:
    msg = check("c.toml", "debug = True\n", debug=True)
    assert msg.startswith("c.toml:1: the rendered file is not valid TOML")
    assert "param debug rendered as True" in msg


def test_yaml_reads_python_booleans_but_not_a_broken_mapping() -> None:
    pytest.importorskip("yaml")
    assert check("c.yaml", "debug: True\n", debug=True) == ""
    msg = check("c.yaml", "opts: {'a': 1\nlr: 0.1\n", opts="{'a': 1")
    assert "not valid YAML" in msg and "param opts" in msg


def test_yaml_with_custom_tags_passes_because_only_the_syntax_is_checked() -> None:
    pytest.importorskip("yaml")
    assert check("c.yaml", "model: !include model.yaml\n") == ""


def test_a_long_culprit_is_shortened_in_the_message() -> None:
    value = "x" * 200
    msg = check("c.json", f'{{"opt": {value}}}', opt=value)
    assert "rendered as " + "x" * 57 + "..." in msg
    assert "x" * 61 not in msg


def test_a_broken_template_line_is_said_as_the_templates_not_blamed_on_a_param_tojson_would_not_mend() -> None:
    """`| tojson` is the fix only when it mends the text: a missing quote or bracket in the
    template itself is said as such, not as a param to write differently."""
    msg = check("c.json", '{"opt": "adam, "lr": 0.1}', opt="adam", lr=0.1)
    assert "param opt" not in msg and "{{ opt | tojson }}" not in msg
    assert msg.endswith(
        "the template itself is not valid JSON there (`| tojson` on its params would not help): fix its text"
    )
    assert 'at \'{"opt": "adam, "lr": 0.1}\'' in msg


def test_a_broken_yaml_flow_sequence_is_the_templates_fault_not_the_string_params() -> None:
    pytest.importorskip("yaml")
    msg = check("c.yml", "a: [adam\n", opt="adam")
    assert "not valid YAML" in msg and "param opt" not in msg and "fix its text" in msg


def test_two_bare_strings_on_one_line_name_the_first_that_breaks_it() -> None:
    msg = check("c.json", '{"a": adam, "b": sgd}', a="adam", b="sgd")
    assert ": param a rendered as adam" in msg and msg.endswith(
        "write {{ a | tojson }} in the template to render it as a JSON value"
    )
    msg = check("c.json", '{"a": "adam", "b": sgd}', a="adam", b="sgd")
    assert ": param b rendered as sgd" in msg


@pytest.mark.parametrize("name", ["c.json", "c.toml"])
def test_a_rendered_file_nested_past_the_parsers_depth_is_a_batch_error_not_a_crash(name: str) -> None:
    deep = "[" * 5_000 + "]" * 5_000
    msg = check(name, deep if name == "c.json" else f"x = {deep}\n")
    assert f"{name}:1: the rendered file is not valid" in msg and "nested too deep" in msg
    assert msg.endswith("flatten the template") and "tojson" not in msg
