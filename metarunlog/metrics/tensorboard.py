"""TensorBoard event files (`**/events.out.tfevents.*`), as written by
`torch.utils.tensorboard`, tensorboardX, Lightning's TensorBoardLogger and Keras' callback.

Read with the `tensorboard` package's event file loader (no TensorFlow needed), imported
only when a folder holds event files: `pip install metarunlog[tensorboard]`. Events are
streamed; consecutive scalar events of one step become one row `{"step": 3, "wall_time":
..., "<tag>": value, ...}`. When event files sit in more than one folder (Keras writes
`logs/train/` and `logs/validation/`, both with `epoch_loss`), each tag is prefixed with its
folder below the common one: `train/epoch_loss`, `validation/epoch_loss`; the folder
`add_hparams` names after the time it ran is left out (`hparam/acc`, the same in every run),
and so are Lightning's `version_N` folders (a resumed run's version_1 continues version_0).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from metarunlog.errors import CorruptRecord
from metarunlog.metrics.base import MissingExtra, Reader
from metarunlog.metrics.registry import register

GLOB = "**/events.out.tfevents.*"
EXTRA = "tensorboard"


@register
class TensorBoardReader(Reader):
    name = "tensorboard"
    globs = (GLOB,)

    def accepts(self, relpath: str) -> bool:
        return "tfevents" in os.path.basename(relpath)

    def summary(self, files: list[Path]) -> dict[str, Any] | None:
        _loader()  # a missing extra is said once, here, rather than in the middle of the rows
        return None

    def rows(self, files: list[Path]) -> Iterator[dict[str, Any]]:
        return self.read_rows_noting(files, ended=False, warn=lambda message: None)

    def read_rows_noting(
        self, files: list[Path], *, ended: bool, warn: Callable[[str], None]
    ) -> Iterator[dict[str, Any]]:
        prefixes = _prefixes(files)
        for path in files:
            yield from iter_events(path, prefixes[path], ended=ended, warn=warn)


def _loader() -> Any:
    try:
        from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    except ImportError:
        raise MissingExtra(
            f"found TensorBoard event files but the reader is not installed: pip install 'metarunlog[{EXTRA}]'"
        ) from None
    return RawEventFileLoader


# `SummaryWriter.add_hparams` (tensorboardX, torch.utils.tensorboard) writes into a folder
# named str(time.time()): a different name in every run, so it is no part of a metric's name;
# nor is Lightning's `version_N` (TensorBoardLogger): a resumed run's version_1 continues
# version_0's curves (files are read in natural order), as with its CSVLogger.
_UNNAMED = re.compile(r"\d{9,}(\.\d+)?|version_\d+")


def _prefixes(files: list[Path]) -> dict[Path, str]:
    dirs = sorted({p.parent for p in files})
    if len(dirs) <= 1:
        return {p: "" for p in files}
    common = Path(os.path.commonpath([str(d) for d in dirs]))
    return {p: _prefix(p.parent.relative_to(common).parts) for p in files}


def _prefix(parts: tuple[str, ...]) -> str:
    kept = [part for part in parts if not _UNNAMED.fullmatch(part)]
    return "/".join(kept) + "/" if kept else ""


def iter_events(
    path: Path, prefix: str = "", *, ended: bool = False, warn: Callable[[str], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of one event file: scalar values of consecutive events with the same step merged;
    none when the file is gone (a rerun removing its logs while mrl reads them).

    The loader stops, silently, at the first record that fails its checksum or is cut
    short: the events before it are kept, and `warn` is told where the file is damaged
    (a record cut at the file's end only once its writer `ended`: while it runs, that is
    a record still being written)."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto import event_pb2

    load = _loader()
    try:
        size = os.stat(path).st_size  # before reading: what a writer appends meanwhile is not damage
        loader = load(str(path))
    except Exception as e:  # the loader's own errors (TensorFlow's NotFoundError...), no OSError
        if not path.exists():
            return
        raise CorruptRecord(f"cannot read {path}: {e}; fix or remove it") from e
    row: dict[str, Any] = {}
    scalar_tags: set[str] = set()
    offset = n = 0  # where the next record starts (a record: 12 bytes, its data, 4 bytes); records read
    parse = event_pb2.Event.FromString
    for record in loader.Load():
        try:
            event = parse(record)
        except DecodeError:  # its checksums hold, yet it is no event: not TensorBoard's
            if warn is not None:
                warn(_damaged(path, offset, n, "it is no event"))
            break
        offset += len(record) + 16
        n += 1
        values = _scalars(event, prefix, scalar_tags)
        if not values:
            continue
        if row and row["step"] != event.step:
            yield row
            row = {}
        row.update(values)
        row["step"] = event.step
        row["wall_time"] = event.wall_time
    else:
        if warn is not None and offset < size and (message := _stopped_early(path, offset, n, ended, size)):
            warn(message)
    if row:
        yield row


def _damaged(path: Path, offset: int, n: int, why: str) -> str:
    return (
        f"{path} is damaged from byte {offset:,} on (event {n + 1}: {why}): "
        f"the {n} event(s) before it are read, the rest of the file is not"
    )


def _stopped_early(path: Path, offset: int, n: int, ended: bool, size: int) -> str | None:
    """Why the loader stopped at `offset`, before `size` (the file's size when it started):
    a bad checksum, or a record cut short (said only once its writer ended)."""
    import struct

    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    try:
        with open(path, "rb") as f:
            f.seek(offset)
            head = f.read(min(12, size - offset))
    except OSError:
        return None
    if len(head) == 12 and masked_crc32c(head[:8]) != struct.unpack("<I", head[8:])[0]:
        return _damaged(path, offset, n, "its header fails its checksum")
    if len(head) < 12 or offset + 16 + struct.unpack("<Q", head[:8])[0] > size:
        if not ended:
            return None  # being written now
        return (
            f"{path}: its last event (event {n + 1}, at byte {offset:,}) is cut short: "
            f"the {n} event(s) before it are read"
        )
    return _damaged(path, offset, n, "its data fails its checksum")


def _scalars(event: Any, prefix: str, scalar_tags: set[str]) -> dict[str, float]:
    """The event's scalar values. A tensor is a scalar when its metadata says so; TF's
    FileWriter writes a tag's metadata on its first value only (as TensorBoard's own
    accumulator notes), so a tag once seen as a scalar stays one (`scalar_tags`)."""
    out: dict[str, float | None] = {}
    for v in event.summary.value:
        kind = v.WhichOneof("value")
        if kind == "simple_value":
            out[prefix + v.tag] = float(v.simple_value)
        elif kind == "tensor":
            if v.HasField("metadata") and v.metadata.plugin_data.plugin_name == "scalars":
                scalar_tags.add(v.tag)
            if v.tag in scalar_tags:
                out[prefix + v.tag] = _tensor_scalar(v.tensor)
    return {k: x for k, x in out.items() if x is not None}


def _tensor_scalar(tensor: Any) -> float | None:
    from tensorboard.util import tensor_util

    try:
        arr = tensor_util.make_ndarray(tensor)
    except (ValueError, TypeError):
        return None
    return float(arr.item()) if arr.size == 1 else None
