"""CSV logs with a header row: `metrics.csv` (Keras' CSVLogger, hand-written loggers; also
Keras' `training.log` when its header is `epoch,...`),
PyTorch Lightning's CSVLogger layout (`lightning_logs/version_*/metrics.csv`, whose rows are
sparse: train and val columns filled on alternate rows), and any `.csv` / `.tsv` a
`metrics.sources` glob finds.

Each data row is one row of metrics; an empty cell is a missing value (so sparse rows keep
only what they hold), a number becomes an int or a float, anything else stays a string.
Files are streamed with the csv module, the delimiter (`,`, tab or `;`) read from the header
and the first data row (`sniff_delimiter`); UTF-8, or UTF-16/32 by their byte order mark.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from metarunlog.errors import CorruptRecord
from metarunlog.metrics.base import ColumnarRows, Columns, LongLines, Reader, line_blocks
from metarunlog.metrics.registry import register

# `training.log`: the file name of Keras' CSVLogger example (read only when its header is
# Keras', `epoch,...`: a plain-text log of that name is not a CSV).
KERAS_LOG = "training.log"
CSV_GLOBS = ("metrics.csv", KERAS_LOG, "**/lightning_logs/version_*/metrics.csv")


@register
class CsvReader(Reader):
    name = "csv"
    globs = CSV_GLOBS

    def accepts(self, relpath: str) -> bool:
        return relpath.endswith((".csv", ".tsv"))

    def rows(self, files: list[Path]) -> Iterator[dict[str, Any]]:
        return self.read_rows(files, ended=False)

    def read_rows(self, files: list[Path], *, ended: bool) -> Iterator[dict[str, Any]]:
        return self.read_rows_noting(files, ended=ended, warn=lambda message: None)

    def read_rows_noting(
        self, files: list[Path], *, ended: bool, warn: Callable[[str], None]
    ) -> Iterator[dict[str, Any]]:
        return ColumnarRows(self._batches(files, ended, warn))  # an iterator of dicts, or batches for who can take them

    def _batches(
        self, files: list[Path], ended: bool, warn: Callable[[str], None]
    ) -> Iterator[Columns | list[dict[str, Any]]]:
        for path in files:
            long = LongLines()
            yield from csv_batches(
                path, first_column="epoch" if path.name == KERAS_LOG else None, ended=ended, long=long
            )
            if long.count:
                warn(long.message(path))


def iter_csv(path: Path, first_column: str | None = None, *, ended: bool = False) -> Iterator[dict[str, Any]]:
    """The data rows of a CSV file with a header, as dicts without the empty cells; nothing
    when `first_column` is given and the header does not start with it. A last row without
    its line end counts only once its writer has `ended` (see `complete_lines`)."""
    return iter(ColumnarRows(csv_batches(path, first_column, ended=ended)))


def csv_batches(
    path: Path, first_column: str | None = None, *, ended: bool = False, long: LongLines | None = None
) -> Iterator[Columns | list[dict[str, Any]]]:
    """`iter_csv`'s rows, a batch at a time: `Columns` where every row holds every column,
    else a list of dicts. Lines are read in blocks (`line_blocks`): one longer than
    MAX_LINE is skipped unread, noted in `long`."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed below, with the text file over it)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return
    with io.TextIOWrapper(raw, encoding=text_encoding(raw.peek(4)[:4]), errors="replace", newline="") as f:
        text = itertools.chain.from_iterable(line_blocks(f, (long or LongLines()).note, block=TEXT_BLOCK, cr=True))
        header_line, first_row = next(text, ""), next(text, "")
        try:
            delimiter = sniff_delimiter(header_line, first_row)
            header = next(csv.reader([header_line], delimiter=delimiter), [])
        except csv.Error as e:  # a header cell past csv's field limit
            raise CorruptRecord(f"{path}: line 1: {e}; fix or remove the file") from e
        names = [h.strip() for h in header]
        if names and names[0].startswith("#"):  # numpy.savetxt's header: "# step,loss"
            names[0] = names[0].lstrip("#").strip()
        if first_column is not None and (len(names) < 2 or names[0] != first_column):
            return
        lines = itertools.chain([first_row] if first_row else [], text)
        rows = Rows(csv.reader(lines if ended else complete_lines(lines), delimiter=delimiter))
        yield from _batches(rows, names)
        if rows.failed is not None:  # the rows before it are read: the table keeps them
            raise CorruptRecord(f"{path}: line {rows.line_num + 1}: {rows.failed}; fix or remove the file")


class Rows:
    """A csv reader's rows a batch at a time, ending at a row the csv module cannot read
    (a cell past its field limit: an unterminated quote makes the rest of a file one cell);
    `failed` says why, once the rows before it are taken."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.failed: csv.Error | None = None

    @property
    def line_num(self) -> int:
        return int(self.reader.line_num)

    def take(self, n: int) -> list[list[str]]:
        batch: list[list[str]] = []
        if self.failed is None:
            try:
                batch.extend(itertools.islice(self.reader, n))  # keeps what it took before an error
            except csv.Error as e:
                self.failed = e
        return batch


def _batches(rows: Rows, names: list[str]) -> Iterator[Columns | list[dict[str, Any]]]:
    columns = ColumnParser(names)
    row_by_row = 0  # batches left to read row by row
    while batch := rows.take(BATCH_ROWS):
        fast = columns(batch) if not row_by_row else None
        if fast is not None:
            yield fast
            continue
        # row by row (a blank cell leaves its key out), and the next rows too: sparse rows
        # (Lightning's) keep coming, and batching them only to find that costs ~10 %
        row_by_row = row_by_row - 1 if row_by_row else ROW_BY_ROW_AFTER_BLANKS // BATCH_ROWS
        parsed = (
            {k: parse_value(c) for k, c in zip(names, cells, strict=False) if k and c.strip() != ""} for cells in batch
        )
        if part := [row for row in parsed if row]:
            yield part


def text_encoding(head: bytes) -> str:
    """How a file starting with `head` is decoded: by its byte order mark (pandas
    to_csv(encoding="utf-16"), Excel's "Unicode Text" are UTF-16), else UTF-8, where
    "utf-8-sig" drops a UTF-8 one (Excel, pandas to_csv(encoding="utf-8-sig"))."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig"


DELIMITERS = ",\t;"


def sniff_delimiter(header: str, first_row: str) -> str:
    """The delimiter splitting the header into the most columns, among those splitting the
    first data row into as many: a name may hold another candidate (pandas quotes a name
    only for its own separator: `step;loss, train;loss, val`). Without a data row that
    agrees, the header's most columns decide."""

    def width(line: str, d: str) -> int:
        return len(next(csv.reader([line], delimiter=d), []))

    agree = [d for d in DELIMITERS if first_row and width(header, d) > 1 and width(header, d) == width(first_row, d)]
    return max(agree or DELIMITERS, key=lambda d: width(header, d))


# Characters read at once: a str block, its lines and their csv rows are held together (a
# 1 MiB block peaked 15 MB above the line-by-line read).
TEXT_BLOCK = 1 << 17
BATCH_ROWS = 4096  # rows converted at once, column by column (bounded memory)
ROW_BY_ROW_AFTER_BLANKS = 15 * BATCH_ROWS  # read row by row after a batch with a blank cell


class ColumnParser:
    """A batch of data rows' cells as the rows `iter_csv` reads one by one (`{name:
    parse_value(cell)}`, blank cells left out), but converted column by column, in C (a
    Python call per cell was 3/4 of a big CSV's reading time): a column that `int()` takes
    whole is those ints; one that `float()` takes whole and holds no whole number (nor an
    infinity: a 400-digit int is inf to float()) is those floats; else `parse_value` per
    cell. None (read it row by row) for a batch with a blank cell (Lightning's sparse rows),
    a short or long row, or a header with an unnamed or repeated column."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.width = len(names) if all(names) and len(set(names)) == len(names) else -1

    def __call__(self, batch: list[list[str]]) -> Columns | None:
        if "" in batch[0] or set(map(len, batch)) != {self.width}:
            return None
        columns = [_column(column) for column in zip(*batch, strict=True)]
        if None in columns:
            return None
        return Columns(self.names, columns)  # type: ignore[arg-type]  # no None left


def _column(cells: tuple[str, ...]) -> list[Any] | None:
    """One column's values, as parse_value gives them; None when a cell is blank (`" "`)."""
    try:
        return list(map(int, cells))  # every cell int-like: what parse_value makes of each (a float's fails at once)
    except ValueError:
        pass
    try:
        floats = list(map(float, cells))
    except ValueError:  # text, or a blank cell (parse_value gives "" exactly for those)
        values = list(map(parse_value, cells))
        return None if "" in values else values
    # no whole number (which `1` could be) nor inf/nan (a 400-digit int is inf to float()):
    # then no cell is one int() would take, and each is the float parse_value reads
    if math.isfinite(sum(floats)) and not any(map(float.is_integer, floats)):
        return floats
    return list(map(parse_value, cells))  # ints and floats mixed (`1`, `0.5`), or inf/nan


def complete_lines(f: Iterable[str]) -> Iterator[str]:
    """The lines of `f` but a last one without its line end: a row still being written
    (CSV writers end every row, `csv`, pandas, Keras and Lightning alike; so does print()).
    Only for a writer that may still write: once it ended by itself, the line is whole."""
    held = None
    for line in f:
        if held is not None:
            yield held
        held = line
    if held is not None and held.endswith(("\n", "\r")):
        yield held


def parse_value(text: str) -> Any:
    """A cell or a regex group as a value: an int, a float, else the stripped string, as
    int() and then float() say. An ASCII cell without `_` is an int exactly when it is
    digits with an optional sign, so only those (and `1_000`, non-ASCII digits) are tried
    as one: a float's cell does not pay int()'s ValueError first (half of a big CSV's
    reading time)."""
    s = text.strip()
    if not s.isascii() or "_" in s or s.isdigit() or (s[:1] in ("-", "+") and s[1:].isdigit()):
        try:
            return int(s)
        except ValueError:
            pass
    try:
        return float(s)
    except ValueError:
        return s
