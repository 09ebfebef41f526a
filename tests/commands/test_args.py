"""metarunlog/commands/_args.py: argument helpers several commands share: `[EXP] [SELECTION]`,
`--opt -value`, hidden older spellings of an option, kebab-case option names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metarunlog.commands._args import add_option, add_target_arguments, apply_aliases, join_dash_values, kebab
from metarunlog.main import Parser
from tests.helpers.repo import run_mrl


def targets(*argv: str) -> tuple[object, object]:
    p = Parser(prog="mrl run")
    add_target_arguments(p, "run")
    ns = p.parse_args(list(argv))
    return ns.expId, ns.selection


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        ((), (None, None)),
        (("3",), ("3", None)),  # a lone number is an experiment
        (("last",), ("last", None)),
        (("1,4-6",), (None, "1,4-6")),  # a lone selection is of the default experiment
        (("2-3",), (None, "2-3")),
        (("all",), (None, "all")),
        (("3", "2"), ("3", "2")),
        (("last", "1-4"), ("last", "1-4")),
        (("2/3",), ("2/3", None)),  # EXP/SELECTION in one argument: resolved by main
    ],
)
def test_targets_are_an_experiment_then_a_selection(argv: tuple[str, ...], parsed: tuple[object, object]) -> None:
    assert targets(*argv) == parsed


def test_more_than_two_targets_is_a_one_line_error_exit_1(project: Path) -> None:
    proc = run_mrl("status", "1", "2", "3", cwd=project)
    assert proc.returncode == 1
    assert proc.stderr.startswith("mrl: error: expected at most EXP and SELECTION, got 1 2 3")
    assert proc.stderr.count("\n") == 1


def test_the_targets_help_says_what_the_command_does_with_them() -> None:
    p = Parser(prog="mrl cancel")
    add_target_arguments(p, "cancel")
    assert "which sub-experiments to cancel" in " ".join(p.format_help().split())


@pytest.mark.parametrize(
    ("argv", "joined"),
    [
        (["--sort", "-val_acc"], ["--sort=-val_acc"]),
        (["3", "--sort", "-val_acc", "-x"], ["3", "--sort=-val_acc", "-x"]),
        (["--sort", "val_acc"], ["--sort", "val_acc"]),
        (["--sort", "-"], ["--sort", "-"]),
        (["--sort", "--", "-x"], ["--sort", "--", "-x"]),
        (["--", "--sort", "-x"], ["--", "--sort", "-x"]),  # after -- nothing is an option
        (["--other", "-x"], ["--other", "-x"]),
        (["--sort"], ["--sort"]),
    ],
)
def test_a_listed_option_takes_a_value_that_starts_with_a_dash(argv: list[str], joined: list[str]) -> None:
    assert join_dash_values(argv, ("--sort",)) == joined


def test_a_hidden_spelling_sets_the_same_value_and_stays_out_of_help() -> None:
    p = Parser(prog="mrl x")
    add_option(p, "--copy-config-from", hidden=("--copyConfigFrom",), metavar="EXP", help="copy it")
    add_option(p, "--force", hidden=("-force",), action="store_true", help="do it")
    assert p.parse_args(["--copyConfigFrom", "3"]).copy_config_from == "3"
    assert p.parse_args(["--copyConfigFrom=5"]).copy_config_from == "5"
    assert p.parse_args(["--copy-config-from", "4"]).copy_config_from == "4"
    assert p.parse_args([]).copy_config_from is None
    assert p.parse_args(["-force"]).force is True and p.parse_args([]).force is False
    text = p.format_help()
    assert "--copy-config-from" in text and "--copyConfigFrom" not in text and " -force" not in text


def test_after_a_double_dash_a_hidden_spelling_is_left_as_it_is() -> None:
    p = Parser(prog="mrl x")
    add_option(p, "--copy-config-from", hidden=("--copyConfigFrom",), metavar="EXP")
    p.add_argument("rest", nargs="*")
    assert apply_aliases(p, ["--copyConfigFrom", "1", "--", "--copyConfigFrom"]) == [
        "--copy-config-from",
        "1",
        "--",
        "--copyConfigFrom",
    ]
    assert p.parse_args(["--", "--copyConfigFrom"]).rest == ["--copyConfigFrom"]


@pytest.mark.parametrize(
    ("name", "kebabbed"),
    [
        ("nEpochs", "n-epochs"),
        ("n_epochs", "n-epochs"),
        ("lr", "lr"),
        ("batchSize2", "batch-size2"),
        ("useGPU", "use-gpu"),
        ("x1Y", "x1-y"),
    ],
)
def test_kebab_is_the_double_dash_spelling_of_an_option_name(name: str, kebabbed: str) -> None:
    assert kebab(name) == kebabbed


@pytest.mark.parametrize(
    "argv",
    [
        ["-cp", "no", "-nc"],
        ["--cp", "no", "--nc"],
        ["--copy-config-from", "no", "--notclean"],
        ["--copyConfigFrom", "no", "--not-clean"],
        ["--copyConfigFrom=no", "--notclean"],
    ],
)
def test_every_spelling_of_the_copy_options_means_the_same(argv: list[str]) -> None:
    from metarunlog.commands._args import add_copy_options

    p = Parser(prog="mrl new")
    add_copy_options(p, "where config files come from", "allow uncommitted changes")
    ns = p.parse_args(apply_aliases(p, argv))
    assert (ns.copyConfigFrom, ns.notclean) == ("no", True)
    assert p.parse_args([]).notclean is False and p.parse_args([]).copyConfigFrom is None


def test_mrl_new_takes_the_older_camel_case_spelling_and_help_shows_only_the_new_ones(project: Path) -> None:
    (project / "train.py").write_text("print('uncommitted')\n")
    proc = run_mrl("new", "--copyConfigFrom", "no", "--not-clean", "older spellings", cwd=project)
    assert proc.returncode == 0, proc.stderr
    exp = project / "output" / "0001"
    assert json.loads((exp / ".mrl").read_text())["dirty"] is True and not (exp / "conf.lua").exists()
    help_text = run_mrl("new", "--help", cwd=project).stdout
    assert "--copy-config-from" in help_text and "--notclean" in help_text
    assert "--copyConfigFrom" not in help_text and "--not-clean" not in help_text
