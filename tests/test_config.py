from __future__ import annotations

import json
from pathlib import Path

import pytest

from metarunlog.errors import ConfigError
from metarunlog.main import main
from metarunlog.project import Project
from tests.helpers.records import make_exp
from tests.helpers.repo import commit_all, run_mrl, set_cfg


def test_a_wrong_type_names_the_key(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, copyFiles="conf.lua")
    assert main(["ls"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'copyFiles' must be a list" in err and ".mrl.cfg" in err


def test_a_wrong_nested_type_names_the_dotted_key(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, run={"jobs": "two"})
    assert main(["ls"]) == 1
    assert "'run.jobs' must be a whole number, not a string" in capsys.readouterr().err


def test_a_fractional_count_says_whole_number_not_a_number(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, run={"jobs": 2.0})
    assert main(["ls"]) == 1
    err = capsys.readouterr().err
    assert "'run.jobs' must be a whole number, not a fraction (2.0)" in err
    assert "a number, not a number" not in err


@pytest.mark.parametrize(("key", "value"), [("jobs", 0), ("jobs", -2), ("retries", -1), ("log_tail", -1)])
def test_a_count_below_its_minimum_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str], key: str, value: int
) -> None:
    set_cfg(project, run={key: value})
    r = run_mrl("status", cwd=project)
    assert r.returncode == 1
    assert r.stderr.startswith("mrl: error:") and f"'run.{key}' must be at least" in r.stderr


def test_booleans_are_not_numbers(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, run={"retries": True})
    assert main(["ls"]) == 1
    assert "'run.retries'" in capsys.readouterr().err


def test_an_unknown_key_warns_with_the_nearest_known_one(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, copyfiles=["x"], run={"comand": "echo"})
    assert main(["ls"]) == 0
    err = capsys.readouterr().err
    assert "unknown key 'copyfiles'" in err and "did you mean 'copyFiles'" in err
    assert "unknown key 'run.comand'" in err and "'run.command'" in err


def test_invalid_json_names_file_and_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".mrl.cfg").write_text('{\n  "outdir": "output",\n  oops\n}\n')
    assert main(["ls"]) == 1
    err = capsys.readouterr().err
    assert ".mrl.cfg: line 3" in err and "Traceback" not in err


def test_a_config_nested_past_the_parsers_depth_is_one_error_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / ".mrl.cfg").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["ls"]) == 1
    err = capsys.readouterr().err
    assert ".mrl.cfg" in err and "nested too deep" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_a_bad_format_string_is_an_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, singleExpFormat="{id:04d}")
    assert main(["ls"]) == 1
    assert "singleExpFormat" in capsys.readouterr().err


def test_a_bad_choice_is_an_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cfg(project, snapshot="hardlink")
    assert main(["ls"]) == 1
    assert "'snapshot' must be one of 'copy', 'link', 'auto'" in capsys.readouterr().err


def test_an_unknown_run_backend_is_an_error_of_the_commands_that_need_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_exp(project, [{"params": {"lr": 0.1}}])
    set_cfg(project, run={"backend": "pbs"})  # a plugin's backend, or a typo: only mrl run can tell
    assert main(["ls"]) == 0
    assert main(["run"]) == 1
    assert "unknown backend 'pbs': use one of local, slurm" in capsys.readouterr().err


def test_missing_keys_get_defaults(project: Path) -> None:
    (project / ".mrl.cfg").write_text(json.dumps({"outdir": "output"}))
    cfg = Project.find(project).cfg
    assert cfg["singleExpFormat"] == "{expId:04d}"
    assert cfg["run"]["backend"] == "local"
    assert cfg.name == "proj"  # attribute access, as hook files of the original used


def test_an_experiment_config_overrides_the_basedir_one(project: Path) -> None:
    set_cfg(project, run={"command": "python train.py", "jobs": 2, "slurm": {"partition": "gpu"}})
    commit_all(project)
    assert main(["new"]) == 0
    expdir = project / "output" / "0001"
    (expdir / ".mrl.cfg").write_text(
        json.dumps({"run": {"jobs": 4, "slurm": {"time": "1:00:00"}}, "analysis_outfn": "report.html"})
    )
    proj = Project.find(project)
    exp = proj.load_exp("1")
    assert exp.cfg["run"]["jobs"] == 4
    assert exp.cfg["run"]["command"] == "python train.py"
    assert exp.cfg["run"]["slurm"] == {**proj.cfg["run"]["slurm"], "partition": "gpu", "time": "1:00:00"}
    assert exp.cfg["analysis_outfn"] == "report.html"
    assert proj.cfg["run"]["jobs"] == 2


def test_an_invalid_experiment_override_is_reported_with_its_path(project: Path) -> None:
    assert main(["new"]) == 0
    bad = project / "output" / "0001" / ".mrl.cfg"
    bad.write_text(json.dumps({"run": {"jobs": "x"}}))
    exp = Project.find(project).load_exp("1")
    from metarunlog.errors import ConfigError

    with pytest.raises(ConfigError, match=str(bad)):
        _ = exp.cfg


def test_the_example_config_documents_every_key() -> None:
    from metarunlog import config

    root = Path(__file__).resolve().parent.parent
    text = (root / ".mrl.cfg.example").read_text()
    from metarunlog.backends import registry
    from metarunlog.metrics.settings import KEYS as METRICS_KEYS

    block_keys = [key for spec in registry.specs() for key in [spec.name, *spec.settings] if spec.settings]
    for key in [*config.TYPES, *config.RUN_TYPES, *block_keys, *METRICS_KEYS, *config.REPORT_TYPES]:
        assert f'"{key}"' in text, key


def test_the_example_config_loads_as_a_real_config(project: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    (project / ".mrl.cfg").write_text((root / ".mrl.cfg.example").read_text())
    cfg = Project.find(project).cfg
    assert cfg["outdir"] == "output"


def test_comment_lines_are_allowed_in_the_config(project: Path) -> None:
    (project / ".mrl.cfg").write_text('{\n  // where experiments go\n  "outdir": "output"\n}\n')
    assert Project.find(project).cfg["outdir"] == "output"


def test_warnings_are_data_on_the_config_and_stay_off_stderr_outside_the_command_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from metarunlog import config

    set_cfg(project, copyfiles=["x"])
    cfg = config.load(project)
    assert any("unknown key 'copyfiles'" in w for w in cfg.warnings)
    assert capsys.readouterr().err == ""  # a notebook collects them; only `mrl` prints them


def test_the_results_layer_imports_no_terminal_or_argparse_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys, metarunlog.results, metarunlog.selection, metarunlog.config; "
        "print(sorted(m for m in ('argparse', 'metarunlog.progress') if m in sys.modules))"
    )
    from tests.conftest import REPO_ROOT

    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_report_block_is_checked_key_by_key(project: Path) -> None:
    set_cfg(project, report={"primary_metric": 3})
    with pytest.raises(ConfigError, match="'report.primary_metric' must be a string or null"):
        _ = Project.find(project).cfg
    set_cfg(project, report={"primary_metrc": "loss"})
    cfg = Project.find(project).cfg
    assert any("report.primary_metric" in w for w in cfg.warnings)  # the did-you-mean names it
    assert cfg["report"]["color_by"] is None  # the defaults fill what is unset


def test_an_oversized_mrl_cfg_is_one_line_not_read_whole(project: Path) -> None:
    with open(project / ".mrl.cfg", "r+b") as f:  # sparse
        f.truncate(300_000_000)
    proc = run_mrl("ls", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == (
        f"mrl: error: {project / '.mrl.cfg'} is 300,000,000 bytes, over the 16 MiB a config can be: fix or replace it\n"
    )
