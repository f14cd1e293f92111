"""Files that survive interruption: atomic whole-file writes, row appends that are all or nothing.

A reader never sees half a file: whole files go through a temporary file and a
rename. A sweep's rows go to an append-only CSV, each row in one ``write`` on an
``O_APPEND`` descriptor, so a kill between rows leaves complete rows only, and
:func:`read_rows` drops a torn last line should one ever appear.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private; a result file is not
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# RFC 4180 line ends: the writer then quotes any field holding a \r or \n
EOL = "\r\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def csv_line(values: list) -> str:
    """One CSV record, quoted as needed ('' for None)."""
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator=EOL).writerow(["" if v is None else v for v in values])
    return buf.getvalue()


class RowAppender:
    """Appends CSV rows to a file, one ``write`` call per row, flushed to the OS at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, values: list) -> None:
        data = csv_line(values).encode()
        written = os.write(self._fd, data)
        if written != len(data):  # only a full disk does this; say so rather than tear the row
            raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RowAppender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_rows(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV written by RowAppender; a torn last record is dropped.

    A record is complete only if it ends with a line end outside quotes: the text is
    cut after the last line end, and a record whose quotes do not close by the end
    of the text (it was torn inside a quoted field) is dropped by the strict reader.
    """
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            rows.append(row)
    except csv.Error:
        pass  # the torn last record
    if not rows:
        return [], []
    header, body = rows[0], rows[1:]
    return header, [r for r in body if len(r) == len(header)]


def write_rows(path: str | Path, header: list[str], rows: list[list]) -> None:
    """The whole CSV, atomically."""
    write_atomic(path, csv_line(header) + "".join(csv_line(r) for r in rows))
