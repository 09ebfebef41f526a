"""metarunlog/metrics/settings.py: the `.mrl.cfg` `metrics` block checked and turned into
`Settings`. Through a real project's `.mrl.cfg` at the end; the readers' use of the
settings is in tests/metrics/test_readers.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metarunlog.errors import ConfigError
from metarunlog.metrics.base import DEFAULT_STEP_KEYS, Settings, Source
from metarunlog.metrics.settings import settings, validate, validate_goals
from tests.helpers.repo import run_mrl, set_cfg

CFG = Path("/p/.mrl.cfg")


def test_no_block_is_the_default_settings() -> None:
    assert settings(None) == Settings() == settings({}) == settings({"metrics": None})
    assert settings(None).step_keys == DEFAULT_STEP_KEYS and settings(None).log_files == ("run.log",)


def test_every_form_of_a_source_becomes_a_glob_or_a_reader_turned_off() -> None:
    got = settings(
        {
            "metrics": {
                "sources": [
                    "eval/*.json",
                    {"glob": "logs/*.txt", "reader": "csv"},
                    {"glob": "x/*.csv", "enabled": True},
                    {"reader": "tensorboard", "enabled": False},
                    "!log",
                ]
            }
        }
    )
    assert got.sources == (Source("eval/*.json"), Source("logs/*.txt", "csv"), Source("x/*.csv"))
    assert got.off == frozenset({"tensorboard", "log"})


def test_metric_goals_in_the_block_win_over_the_top_level_ones() -> None:
    cfg = {"metric_goals": {"*_score": "max", "val_bpb": "max"}, "metrics": {"metric_goals": {"val_bpb": "min"}}}
    assert settings(cfg).goals == {"*_score": "max", "val_bpb": "min"}


def test_patterns_log_files_and_step_keys_are_kept_in_order() -> None:
    block = {"patterns": ["a=(?P<a>\\d+)", "b=(?P<b>\\d+)"], "log_files": ["out.txt"], "step_keys": ["round", "step"]}
    got = settings({"metrics": block})
    assert got.patterns == tuple(block["patterns"]) and got.log_files == ("out.txt",)
    assert got.step_keys == ("round", "step")


def test_an_unknown_key_is_a_warning_with_the_near_name_not_an_error() -> None:
    assert validate({"pattern": ["a=(?P<a>.)"]}, CFG) == [
        "/p/.mrl.cfg: unknown key 'metrics.pattern' (did you mean 'metrics.patterns'?)"
    ]
    assert validate({"zzzz": 1}, CFG) == ["/p/.mrl.cfg: unknown key 'metrics.zzzz'"]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"patterns": "epoch (?P<e>\\d+)"}, "key 'metrics.patterns' must be a list"),
        ({"log_files": ["run.log", ""]}, "'metrics.log_files' must be a list of non-empty strings"),
        ({"step_keys": [1]}, "'metrics.step_keys' must be a list of non-empty strings"),
        ({"patterns": ["epoch (\\d+"]}, "'metrics.patterns\\[0\\]' is not a valid regex"),
        ({"patterns": ["a=(?P<a>.)", "epoch (\\d+)"]}, "'metrics.patterns\\[1\\]' has no named group"),
        ({"sources": "*.json"}, "key 'metrics.sources' must be a list"),
        ({"sources": [""]}, "'metrics.sources\\[0\\]' must be"),
        ({"sources": [3]}, "'metrics.sources\\[0\\]' must be"),
        ({"sources": [{"glob": "a", "reader": 3}]}, "'reader' must be a reader's name"),
        ({"sources": [{"glob": "a", "what": 1}]}, "must be"),
        ({"sources": [{"reader": "csv"}]}, "'metrics.sources\\[0\\]' must be"),
        ({"sources": [{"enabled": False}]}, "say which reader to turn off"),
        ({"sources": [{"glob": "a", "enabled": "no"}]}, "must be"),
        ({"metric_goals": ["val_loss"]}, "'metrics.metric_goals' must be an object"),
        (
            {"metric_goals": {"val_loss": "MIN"}},
            "'metrics.metric_goals.val_loss' must be \"min\" or \"max\", not 'MIN'",
        ),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_file_and_the_key(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        validate(block, CFG)
    assert str(e.value).startswith("/p/.mrl.cfg: ")


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (["*.json", "!nosuch"], "'metrics.sources\\[1\\]': '!nosuch' names no reader; the readers are: .*csv"),
        ([{"glob": "a", "reader": "xml"}], "'metrics.sources\\[0\\]': no reader 'xml'; the readers are"),
    ],
)
def test_a_reader_no_module_registers_is_an_error_where_metrics_are_read_not_when_the_config_is(
    sources: list[Any], message: str
) -> None:
    from metarunlog.config import Config

    assert validate({"sources": sources}, CFG) == []  # a plugin's reader, its module not in "plugins" yet
    with pytest.raises(ConfigError, match=message) as e:
        settings(Config({"metrics": {"sources": sources}}, CFG))
    assert str(e.value).startswith("/p/.mrl.cfg: ") and '"plugins": ["MODULE"]' in str(e.value)


def test_the_top_level_goals_name_their_own_key() -> None:
    with pytest.raises(ConfigError, match="key 'metric_goals.acc' must be"):
        validate_goals({"acc": "up"}, "metric_goals", CFG)
    validate_goals({"acc": "max", "*_loss": "min"}, "metric_goals", CFG)  # fine


def test_a_valid_block_has_no_warnings() -> None:
    block = {
        "sources": ["eval/*.json", {"glob": "l/*.txt", "reader": "csv"}, {"reader": "log", "enabled": False}, "!csv"],
        "patterns": ["val_acc=(?P<val_acc>[0-9.]+)"],
        "log_files": ["run.log"],
        "step_keys": ["step"],
        "metric_goals": {"val_bpb": "min"},
    }
    assert validate(block, CFG) == []


def test_a_bad_metrics_block_in_a_project_is_one_error_line_and_an_unknown_key_a_warning(project: Path) -> None:
    set_cfg(project, metrics={"patterns": ["epoch (\\d+)"]})
    proc = run_mrl("table", cwd=project)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("mrl: error: ") and "metrics.patterns[0]' has no named group" in proc.stderr
    set_cfg(project, metrics={"step_key": ["epoch"]})
    proc = run_mrl("ls", cwd=project)
    assert proc.returncode == 0 and "unknown key 'metrics.step_key' (did you mean 'metrics.step_keys'?)" in proc.stderr
