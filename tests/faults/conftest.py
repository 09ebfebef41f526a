"""Fixtures for fault tests: real read-only and full file systems (mounts), skipped where
this machine may not mount (not root, or no CAP_SYS_ADMIN)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def full_disk() -> Iterator[callable]:  # type: ignore[valid-type]
    """`full_disk(path)`: mount a 2 MiB tmpfs at `path` (moving what was there onto it);
    `.fill()` on the result fills it up. `inodes=N`: at most N files and folders on it."""
    mounted: list[Path] = []

    def make(path: Path, size: str = "2m", inodes: int | None = None) -> Path:
        if os.geteuid() != 0:
            pytest.skip("needs root to mount a small tmpfs")
        saved = path.with_name(path.name + ".saved")
        if path.exists():
            path.rename(saved)
        path.mkdir()
        options = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
        if not _mount("-t", "tmpfs", "-o", options, "tmpfs", str(path)):
            pytest.skip("cannot mount tmpfs here")
        mounted.append(path)
        if saved.exists():
            subprocess.run(["cp", "-a", f"{saved}/.", str(path)], check=True)
        return path

    yield make
    for p in mounted:
        _umount(p)


def fill(path: Path, leave: int = 0) -> Path:
    """Fill the file system holding `path` until writes fail with ENOSPC, then free `leave`
    bytes again (a disk that fills up part-way through the next write); the filler's path."""
    filler = path / ".filler"
    # unbuffered: a write cut short by ENOSPC left bytes in the buffer, and closing the
    # file raised ENOSPC again out of the harness (a flaky full-disk test)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
        if leave:
            f.truncate(max(0, f.tell() - leave))
    return filler


@pytest.fixture
def read_only() -> Iterator[callable]:  # type: ignore[valid-type]
    """`read_only(path)`: make `path` a read-only bind mount of itself (EROFS even for root)."""
    mounted: list[Path] = []

    def make(path: Path) -> Path:
        _bind(path, mounted)
        if not _mount("-o", "remount,ro,bind", str(path)):
            pytest.skip("cannot remount read-only here")
        return path

    yield make
    for p in reversed(mounted):
        _umount(p)


@pytest.fixture
def bind_mount() -> Iterator[callable]:  # type: ignore[valid-type]
    """`bind_mount(path)`: make `path` a bind mount of itself: the same filesystem (one
    st_dev) on another mount, which link(2) does not cross (EXDEV)."""
    mounted: list[Path] = []
    yield lambda path: _bind(path, mounted)
    for p in reversed(mounted):
        _umount(p)


def _bind(path: Path, mounted: list[Path]) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root for a bind mount")
    if not _mount("--bind", str(path), str(path)):
        pytest.skip("cannot bind-mount here")
    mounted.append(path)
    return path


@pytest.fixture
def whole_second_fs(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem keeping whole-second times (ext2 with 128-byte inodes, as on older
    disks; HFS+ and FAT are coarser still), loop-mounted at `tmp_path/ws`."""
    if os.geteuid() != 0:
        pytest.skip("needs root to loop-mount a filesystem")
    image, mnt = tmp_path / "ws.img", tmp_path / "ws"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    made = subprocess.run(["mkfs.ext2", "-q", "-F", "-I", "128", str(image)], capture_output=True)
    mnt.mkdir()
    if made.returncode != 0 or not _mount("-o", "loop", str(image), str(mnt)):
        pytest.skip("cannot make or loop-mount an ext2 image here")
    try:
        probe = mnt / "probe"
        probe.touch()
        os.utime(probe, ns=(0, 1_500_000_000))
        if probe.stat().st_mtime_ns % 10**9:
            pytest.skip("this ext2 keeps sub-second times")
        probe.unlink()
        yield mnt
    finally:
        _umount(mnt)
