"""metarunlog/jsonio.py: atomic JSON records and reads that name the broken file."""

from __future__ import annotations

import datetime
import errno
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metarunlog import jsonio
from metarunlog.errors import CorruptRecord, MrlError


def test_write_json_then_read_json_gives_the_data_back(tmp_path: Path) -> None:
    data = {"state": "done", "attempts": 2, "command": ["echo a", "echo b"], "nested": {"x": None}}
    jsonio.write_json(tmp_path / "rec.json", data)
    assert jsonio.read_json(tmp_path / "rec.json") == data
    assert (tmp_path / "rec.json").read_text().endswith("}\n")


def test_write_json_writes_values_json_cannot_hold_as_their_string(tmp_path: Path) -> None:
    jsonio.write_json(tmp_path / "rec.json", {"path": tmp_path})
    assert jsonio.read_json(tmp_path / "rec.json") == {"path": str(tmp_path)}


def test_write_json_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "rec.json"
    jsonio.write_json(path, {"v": 1})
    inode = path.stat().st_ino
    jsonio.write_json(path, {"v": 2}, durable=False)
    assert jsonio.read_json(path) == {"v": 2}
    assert path.stat().st_ino != inode  # a new file renamed over the old one, never written in place
    assert [p.name for p in tmp_path.iterdir()] == ["rec.json"]


def test_a_write_that_fails_on_a_full_disk_keeps_the_old_file_and_removes_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.json"
    jsonio.write_json(path, {"v": 1})

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as e:
        jsonio.write_json(path, {"v": 2})
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert jsonio.read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["rec.json"]


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rec.json"
    jsonio.write_json(path, {"v": 1})

    def no_rename(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(KeyboardInterrupt):
        jsonio.write_json(path, {"v": 2})
    monkeypatch.undo()
    assert jsonio.read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["rec.json"]


def test_a_written_record_has_the_permissions_the_umask_gives_a_new_file(tmp_path: Path) -> None:
    jsonio.write_json(tmp_path / "rec.json", {})
    (tmp_path / "plain").write_text("")
    mode = stat.S_IMODE((tmp_path / "rec.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode)  # not mkstemp's private 0600


def test_a_malformed_record_is_a_user_error_naming_the_path_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / ".mrl.status"
    path.write_text('{\n  "state": "done",\n  "attempts": \n}\n')
    with pytest.raises(CorruptRecord) as e:
        jsonio.read_json(path)
    assert isinstance(e.value, MrlError)
    assert str(path) in str(e.value)
    assert "line 4" in str(e.value)
    assert "fix or remove the file" in str(e.value)


def test_a_record_that_is_not_utf8_is_a_user_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / ".mrl"
    path.write_bytes(b'{"description": "\xff\xfe"}')
    with pytest.raises(CorruptRecord, match="not UTF-8"):
        jsonio.read_json(path)


def test_read_json_or_gives_the_default_only_for_a_missing_file(tmp_path: Path) -> None:
    assert jsonio.read_json_or(tmp_path / "missing", {"n": 0}) == {"n": 0}
    (tmp_path / "bad").write_text("{")
    with pytest.raises(CorruptRecord):
        jsonio.read_json_or(tmp_path / "bad", {})


def test_now_is_iso_8601_with_an_offset_to_the_second() -> None:
    stamp = jsonio.now()
    parsed = datetime.datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None
    assert parsed.microsecond == 0


# -- a write prepared now, made durable and visible later (the local pool's hand-over) ----------


def test_a_prepared_write_is_invisible_until_committed_and_then_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".mrl.status"
    jsonio.write_json(path, {"state": "running"})
    pending = jsonio.prepare_json(path, {"state": "done"})
    assert jsonio.read_json(path) == {"state": "running"}
    pending.commit()
    assert jsonio.read_json(path) == {"state": "done"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mrl.status"]


def test_an_aborted_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "rec.json"
    jsonio.write_json(path, [1])
    jsonio.prepare_json(path, [2]).abort()
    assert jsonio.read_json(path) == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.json"]


def test_commit_closes_the_descriptors_it_was_asked_to_keep(tmp_path: Path) -> None:
    pending = jsonio.prepare_text(tmp_path / "a.txt", "x")
    fd = os.open(tmp_path, os.O_RDONLY)
    pending.keep.append(fd)
    pending.commit()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_a_failed_commit_removes_its_temp_file_and_releases_what_it_kept(tmp_path: Path) -> None:
    target = tmp_path / "dir-in-the-way"
    target.mkdir()
    (target / "x").write_text("keeps the folder non-empty")
    pending = jsonio.prepare_text(target, "x")  # renaming a file over a folder fails
    fd = os.open(tmp_path, os.O_RDONLY)
    pending.keep.append(fd)
    with pytest.raises(OSError):
        pending.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir-in-the-way"]
    with pytest.raises(OSError):
        os.fstat(fd)


def test_temp_names_never_collide_within_a_process(tmp_path: Path) -> None:
    pendings = [jsonio.prepare_text(tmp_path / "b.txt", str(i)) for i in range(50)]
    assert len({p.tmp for p in pendings}) == 50
    for p in pendings:
        p.commit()
    assert (tmp_path / "b.txt").read_text() == "49"


# -- group commit: records renamed into place at once, made durable in batches ---------------


def _spy_syncfs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = jsonio.syncfs

    def spy(path: str | os.PathLike[str]) -> None:
        calls.append(os.fspath(path))
        real(path)

    monkeypatch.setattr(jsonio, "syncfs", spy)
    return calls


def test_a_group_commit_reports_its_records_durable_only_after_one_syncfs_for_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_syncfs(monkeypatch)
    durable: list[tuple[int, OSError | None]] = []
    group: jsonio.GroupCommit[int] = jsonio.GroupCommit(tmp_path, lambda item, err: durable.append((item, err)), 60)
    for i in range(20):
        jsonio.write_json(tmp_path / f"{i}.json", {"i": i}, durable=False)
        group.add(tmp_path / f"{i}.json", i)
    assert durable == [] and calls == []  # within the window: nothing synced, nothing claimed
    group.flush()
    assert calls == [str(tmp_path)]
    assert durable == [(i, None) for i in range(20)]
    group.close()
    assert calls == [str(tmp_path)]  # nothing left to sync


def test_a_group_commit_makes_a_record_durable_within_its_window_without_a_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    calls = _spy_syncfs(monkeypatch)
    durable: list[str] = []
    group: jsonio.GroupCommit[str] = jsonio.GroupCommit(tmp_path, lambda item, err: durable.append(item), 0.05)
    jsonio.write_json(tmp_path / "a.json", {}, durable=False)
    group.add(tmp_path / "a.json", "a")
    deadline = time.monotonic() + 30
    while not durable and time.monotonic() < deadline:
        time.sleep(0.01)
    assert durable == ["a"] and len(calls) == 1
    group.close()


def test_when_syncfs_fails_a_group_commit_fsyncs_each_record_and_names_the_one_it_could_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(path: str | os.PathLike[str]) -> None:  # someone's writeback failed (EIO)
        raise OSError(errno.EIO, "Input/output error", os.fspath(path))

    monkeypatch.setattr(jsonio, "syncfs", failing)
    durable: dict[str, OSError | None] = {}
    group: jsonio.GroupCommit[str] = jsonio.GroupCommit(tmp_path, durable.__setitem__, 60)
    jsonio.write_json(tmp_path / "a.json", {}, durable=False)
    group.add(tmp_path / "a.json", "a")
    group.add(tmp_path / "gone.json", "gone")  # removed since: it cannot be made durable
    group.close()
    assert durable["a"] is None
    assert isinstance(durable["gone"], FileNotFoundError)


def test_read_bytes_reads_a_file_whole_and_names_a_folder_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 200_000)
    assert jsonio.read_bytes(tmp_path / "big") == b"x" * 200_000
    with pytest.raises(IsADirectoryError) as e:
        jsonio.read_bytes(tmp_path)
    assert e.value.filename == str(tmp_path)


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_VALUES = (
    _SCALARS
    | st.lists(st.text(), max_size=3)
    | st.lists(_SCALARS, max_size=3)
    | st.dictionaries(st.text(), _SCALARS, max_size=2)
)


@given(st.dictionaries(st.text(), _VALUES, max_size=6) | st.lists(_SCALARS, max_size=3) | _SCALARS)
def test_records_are_written_as_json_dumps_with_indent_2_writes_them(data: object) -> None:
    import json

    assert jsonio.dumps(data) == json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


def test_a_record_nested_too_deep_for_the_parser_is_a_corrupt_record_naming_it(tmp_path: Path) -> None:
    # json.loads raises RecursionError (not JSONDecodeError) past ~1,000 levels: a garbage
    # .mrl.status stopped mrl status with a traceback
    path = tmp_path / ".mrl.status"
    path.write_text("[" * 100_000)
    with pytest.raises(CorruptRecord, match=f"corrupt record {path}: nested too deep to read; fix or remove the file"):
        jsonio.read_json(path)


def test_now_made_once_a_second_is_what_datetime_now_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    # a zone with summer time: the offset comes from the second's own zone, not a cached one
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        monkeypatch.setattr(jsonio, "_LAST_NOW", (-1, ""))
        for _ in range(2000):
            before = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            made = jsonio.now()
            after = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            assert made in (before, after)
        for stamp in (1774746000 - 1, 1774746000, 1792890000 - 1, 1792890000):  # 2026's changes
            monkeypatch.setattr(jsonio.time, "time_ns", lambda s=stamp: s * 10**9 + 999_999_999)
            want = datetime.datetime.fromtimestamp(stamp + 0.999999).astimezone().isoformat(timespec="seconds")
            assert jsonio.now() == want
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_record_over_the_size_limit_is_named_unread(tmp_path: Path) -> None:
    path = tmp_path / ".mrl"
    with open(path, "wb") as f:
        f.truncate(jsonio.RECORD_MAX + 1)
    with pytest.raises(CorruptRecord, match=r"oversized record .*: 16,777,217 bytes, over the 16 MiB"):
        jsonio.read_json(path)
    with pytest.raises(CorruptRecord, match="oversized record"):
        jsonio.read_json_or(path, None)


def test_a_file_whose_size_says_less_than_it_holds_is_stopped_at_the_limit() -> None:
    """/proc files say 0 bytes: the read itself stops past the limit, the size is no guard alone."""
    with pytest.raises(CorruptRecord, match="oversized record /proc/self/maps"):
        jsonio.read_bytes("/proc/self/maps", limit=16)
    assert jsonio.read_bytes("/proc/self/maps")  # no limit: read whole


def test_a_record_too_large_to_read_back_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "rec.json"
    jsonio.write_json(path, {"old": 1})
    with pytest.raises(MrlError, match=r"rec.json would be [\d,]+ bytes, over the 16 MiB .*nothing written"):
        jsonio.write_json(path, {"params": "x" * jsonio.RECORD_MAX})
    assert jsonio.read_json(path) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.json"]
