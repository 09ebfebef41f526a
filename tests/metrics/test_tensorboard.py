"""metarunlog/metrics/tensorboard.py: event files written by tensorboardX's SummaryWriter
(torch.utils.tensorboard writes the same records), read back as rows; cut, corrupt and
empty files. Keras' tensor scalars, hparams and the missing extra through `mrl table` are in
tests/metrics/test_readers.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from metarunlog.metrics.base import Settings
from metarunlog.metrics.tensorboard import TensorBoardReader, _prefixes, iter_events

tensorboardX = pytest.importorskip("tensorboardX")
pytest.importorskip("tensorboard")


def events_in(folder: Path) -> list[Path]:
    return sorted(folder.rglob("events.out.tfevents.*"))


def write(folder: Path, scalars: list[tuple[str, float, int]]) -> Path:
    w = tensorboardX.SummaryWriter(str(folder))
    for tag, value, step in scalars:
        w.add_scalar(tag, value, step)
    w.close()
    (path,) = events_in(folder)
    return path


def values(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def test_scalars_of_one_step_are_one_row_in_step_order(tmp_path: Path) -> None:
    path = write(tmp_path, [(t, v / (s + 1), s) for s in range(3) for t, v in (("loss", 1.0), ("acc", 0.5))])
    rows = list(iter_events(path))
    assert values(rows) == [
        {"loss": 1.0, "acc": 0.5, "step": 0},
        {"loss": 0.5, "acc": 0.25, "step": 1},
        {"loss": pytest.approx(1 / 3), "acc": pytest.approx(1 / 6), "step": 2},
    ]
    assert all(isinstance(r["wall_time"], float) and r["wall_time"] > 0 for r in rows)


def test_a_step_logged_again_later_is_a_row_of_its_own(tmp_path: Path) -> None:
    # a resumed run counting from an earlier checkpoint: the curve has both
    path = write(tmp_path, [("loss", 3.0, 0), ("loss", 2.0, 1), ("loss", 2.5, 1 - 1), ("loss", 1.0, 1)])
    assert [(r["step"], r["loss"]) for r in iter_events(path)] == [(0, 3.0), (1, 2.0), (0, 2.5), (1, 1.0)]


def test_nan_and_inf_scalars_are_kept_as_floats(tmp_path: Path) -> None:
    path = write(tmp_path, [("loss", float("nan"), 0), ("loss", float("inf"), 1)])
    rows = list(iter_events(path))
    assert math.isnan(rows[0]["loss"]) and rows[1]["loss"] == math.inf  # type: ignore[arg-type]


def test_text_images_and_histograms_are_no_rows(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    w = tensorboardX.SummaryWriter(str(tmp_path))
    w.add_text("note", "hello", 0)
    w.add_histogram("weights", np.arange(10.0), 0)
    w.add_image("sample", np.zeros((3, 4, 4)), 0)
    w.add_scalar("loss", 0.5, 1)
    w.close()
    assert values(list(iter_events(events_in(tmp_path)[0]))) == [{"loss": 0.5, "step": 1}]


def test_a_file_cut_mid_record_gives_the_records_before_the_cut(tmp_path: Path) -> None:
    # the writer flushes while the run goes on: the last record may be half there
    path = write(tmp_path / "run", [("loss", 1.0 / (s + 1), s) for s in range(5)])
    cut = tmp_path / "cut" / path.name
    cut.parent.mkdir()
    cut.write_bytes(path.read_bytes()[:-7])
    assert [r["step"] for r in iter_events(cut)] == [0, 1, 2, 3]


@pytest.mark.parametrize("data", [b"", b"not an event file at all, just text\n"])
def test_an_empty_or_garbage_event_file_is_no_rows_not_an_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "events.out.tfevents.1700000000.host"
    path.write_bytes(data)
    assert list(iter_events(path)) == []


def test_add_scalars_folders_prefix_their_tags_and_the_main_writer_s_stay_bare(tmp_path: Path) -> None:
    w = tensorboardX.SummaryWriter(str(tmp_path))
    w.add_scalar("lr", 0.1, 0)
    w.add_scalars("loss", {"train": 1.0, "val": 2.0}, 0)
    w.close()
    rows = list(TensorBoardReader(Settings()).rows(events_in(tmp_path)))
    names = {k for r in rows for k in r} - {"step", "wall_time"}
    assert "lr" in names and len(names) == 3
    assert {n for n in names if n != "lr"} == {"loss/train/loss", "loss/val/loss"}


def test_prefixes_are_the_folders_below_the_common_one_without_timestamp_folders() -> None:
    files = [Path("/r/logs/train/e.1"), Path("/r/logs/validation/e.2"), Path("/r/logs/1700000000.123/e.3")]
    assert _prefixes(files) == {files[0]: "train/", files[1]: "validation/", files[2]: ""}
    one = [Path("/r/logs/e.1"), Path("/r/logs/e.2")]
    assert _prefixes(one) == {one[0]: "", one[1]: ""}


def test_the_reader_owns_event_files_anywhere_below_the_folder() -> None:
    reader = TensorBoardReader(Settings())
    assert reader.accepts("lightning_logs/version_0/events.out.tfevents.1.host.1.0")
    assert not reader.accepts("tfevents_notes/metrics.csv") and not reader.accepts("metrics.jsonl")
    assert reader.summary([]) is None  # the extra is there: no hint, no summary


def test_an_event_file_removed_after_the_folder_was_listed_is_no_rows_and_the_others_still_read(
    tmp_path: Path,
) -> None:
    # a rerun's `rm -rf logs/` while `mrl table` reads: the tensorboard loader raised its own
    # NotFoundError (no OSError), a traceback
    kept = write(tmp_path / "train", [("loss", 1.0, 0)])
    gone = write(tmp_path / "val", [("loss", 2.0, 0)])
    files = events_in(tmp_path)
    gone.unlink()
    rows = list(TensorBoardReader(Settings()).rows(files))
    assert values(rows) == [{"train/loss": 1.0, "step": 0}] and kept.exists()


def test_lightning_s_version_folders_of_a_resumed_run_share_their_metric_names(tmp_path: Path) -> None:
    # TensorBoardLogger writes lightning_logs/version_N/; a resumed (or --force) run adds
    # version_1: its tags became version_0/train_loss and version_1/train_loss, other
    # columns than a run with one version has (as the CSV reader, the later version continues)
    logs = tmp_path / "lightning_logs"
    write(logs / "version_0", [("train_loss", 1.0, 0), ("train_loss", 0.8, 1)])
    write(logs / "version_1", [("train_loss", 0.7, 1), ("train_loss", 0.5, 2)])
    rows = list(TensorBoardReader(Settings()).rows(events_in(tmp_path)))
    assert values(rows) == [
        {"train_loss": 1.0, "step": 0},
        {"train_loss": pytest.approx(0.8), "step": 1},
        {"train_loss": pytest.approx(0.7), "step": 1},
        {"train_loss": 0.5, "step": 2},
    ]


def _record_starts(data: bytes) -> list[int]:
    """Where each record of an event file starts (8-byte length, 4-byte crc, data, 4-byte crc)."""
    import struct

    starts, at = [], 0
    while at < len(data):
        starts.append(at)
        at += 16 + struct.unpack("<Q", data[at : at + 8])[0]
    return starts


def _read_noting(path: Path, *, ended: bool) -> tuple[list[dict[str, object]], list[str]]:
    said: list[str] = []
    rows = list(TensorBoardReader(Settings()).read_rows_noting([path], ended=ended, warn=said.append))
    return values(rows), said


@pytest.mark.parametrize(("where", "why"), [(4, "its header fails its checksum"), (14, "its data fails its checksum")])
def test_a_file_corrupt_mid_way_keeps_the_events_before_and_says_where_it_is_damaged(
    tmp_path: Path, where: int, why: str
) -> None:
    # the loader stopped at a bad checksum without a word: the rest of the run's curve was
    # silently missing from the table and the report
    path = write(tmp_path, [("loss", 1.0 / (s + 1), s) for s in range(6)])
    data = bytearray(path.read_bytes())
    starts = _record_starts(bytes(data))
    assert len(starts) == 7  # the file-version event, then one per scalar
    bad = starts[4]  # the event of step 3
    data[bad + where] ^= 0xFF
    path.write_bytes(bytes(data))
    for ended in (False, True):  # damage is no write under way
        rows, said = _read_noting(path, ended=ended)
        assert [r["step"] for r in rows] == [0, 1, 2]
        assert said == [
            f"{path} is damaged from byte {bad:,} on (event 5: {why}): "
            "the 4 event(s) before it are read, the rest of the file is not"
        ]


def test_a_last_event_cut_short_is_said_once_its_writer_ended_and_not_while_it_writes(tmp_path: Path) -> None:
    path = write(tmp_path, [("loss", 1.0 / (s + 1), s) for s in range(3)])
    data = path.read_bytes()
    last = _record_starts(data)[-1]
    path.write_bytes(data[:-7])
    assert _read_noting(path, ended=False) == ([{"loss": 1.0, "step": 0}, {"loss": 0.5, "step": 1}], [])
    rows, said = _read_noting(path, ended=True)
    assert [r["step"] for r in rows] == [0, 1]
    assert said == [
        f"{path}: its last event (event 4, at byte {last:,}) is cut short: the 3 event(s) before it are read"
    ]


def test_a_whole_event_file_is_no_warning(tmp_path: Path) -> None:
    path = write(tmp_path, [("loss", 1.0, 0), ("loss", 0.5, 1)])
    assert _read_noting(path, ended=True) == ([{"loss": 1.0, "step": 0}, {"loss": 0.5, "step": 1}], [])


def test_mrl_table_says_an_event_file_is_damaged(project: Path) -> None:
    import json

    from tests.helpers.records import done, make_exp
    from tests.helpers.repo import run_mrl

    exp = make_exp(project, [{"status": done()}])
    path = write(exp.subexp_dir(1) / "logs", [("loss", 1.0 / (s + 1), s) for s in range(4)])
    data = bytearray(path.read_bytes())
    data[_record_starts(bytes(data))[3] + 14] ^= 0xFF
    path.write_bytes(bytes(data))
    proc = run_mrl("table", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["loss"] == 0.5  # step 1's, the last before the damage
    assert f"mrl: warning: {path} is damaged from byte" in proc.stderr


def test_events_appended_while_the_file_is_read_are_no_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the run's writer flushes right as the loader reaches the end: what lies past where it
    # stopped was written after it started (whole records), not a damaged file
    from metarunlog.metrics import tensorboard

    path = write(tmp_path / "run", [("loss", 1.0 / (s + 1), s) for s in range(3)])
    more = write(tmp_path / "more", [("loss", 0.1, 10)]).read_bytes()
    real = tensorboard._loader()

    class AppendedAtTheEnd(real):  # type: ignore[misc, valid-type]
        def Load(self) -> Any:  # noqa: N802 (the loader's name)
            yield from super().Load()
            with path.open("ab") as f:  # after it hit the end, before mrl looks again
                f.write(more)

    monkeypatch.setattr(tensorboard, "_loader", lambda: AppendedAtTheEnd)
    rows, said = _read_noting(path, ended=False)
    assert [r["step"] for r in rows] == [0, 1, 2] and said == []
