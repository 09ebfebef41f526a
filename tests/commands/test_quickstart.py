"""mrl quickstart: a fresh example project, taken through init, new, makebatch and run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.repo import REPO_ROOT, git, run_mrl


def test_quickstart_makes_a_project_whose_grid_runs_and_writes_metrics(tmp_path: Path) -> None:
    target = tmp_path / "my demo"  # a space in the path: every run must still work
    res = run_mrl("quickstart", str(target), cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    exp = target / "output" / "0001"
    subs = sorted(p for p in exp.iterdir() if p.name.isdigit())
    assert [p.name for p in subs] == ["001", "002", "003", "004", "005", "006"]
    for sub in subs:
        assert json.loads((sub / ".mrl.status").read_text())["state"] == "done"
        lines = (sub / "metrics.jsonl").read_text().splitlines()
        assert set(json.loads(lines[-1])) == {"step", "loss", "acc"}
        assert set(json.loads((sub / "metrics.json").read_text())) == {"loss", "acc"}
    assert (exp / ".mrl.done").exists()
    assert f"experiment:      {exp}" in res.stdout
    assert git(target, "status", "--porcelain") == ""  # everything mrl needs is committed


def test_quickstart_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mine.txt").write_text("keep me")
    res = run_mrl("quickstart", "demo", cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.startswith("mrl: error:") and "not empty" in res.stderr
    assert [p.name for p in (tmp_path / "demo").iterdir()] == ["mine.txt"]


def test_quickstart_works_without_a_git_identity(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(tmp_path), GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1", PYTHONPATH=str(REPO_ROOT))
    res = subprocess.run(
        [sys.executable, "-m", "metarunlog", "quickstart", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_quickstart_folder_under_a_file_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    res = run_mrl("quickstart", "a-file/demo", cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith(f"mrl: error: cannot make the folder {tmp_path / 'a-file' / 'demo'} (not a directory)")
    assert "give a new folder" in res.stderr and len(res.stderr.splitlines()) == 1
