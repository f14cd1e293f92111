"""Files that survive interruption: atomic whole-file writes, row appends that are all or nothing.

A reader never sees half a file: whole files go through a temporary file and a
rename. A sweep's rows go to an append-only CSV, each row in one ``write`` on an
``O_APPEND`` descriptor, so a kill between rows leaves complete rows only, and
:func:`read_rows` drops a torn last line should one ever appear.

Files a user hands in are read through :func:`read_text`, which refuses anything
but a regular file within a size limit, so a device, a FIFO or a huge file is an
error naming the path, never a hang or an exhausted memory.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
from pathlib import Path

from simlab.errors import OutputError, Problem, ScenarioError

# Files a person writes (scenario, fleet and sweep YAML, the field-data CSVs): the largest
# shipped is under 10 KiB, so 1 MiB is a hundred times any real one yet quick to parse.
INPUT_LIMIT = 1 << 20
# Files simlab wrote and reads back (a sweep's CSV, .summary.csv, .meta.json, a cross-check's
# output): a sweep of 100,000 rows is about 100 MiB; 256 MiB leaves room and still fits in memory.
OUTPUT_LIMIT = 256 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def size_text(n: int) -> str:
    """``512 bytes``, ``1 MiB``, ``8.4 GiB``: a byte count for a message."""
    if n < 1024:
        return f"{n} bytes"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"  # pragma: no cover


def read_text(
    path: str | Path,
    *,
    limit: int = INPUT_LIMIT,
    what: str = "scenario file",
    error: type[ScenarioError] = ScenarioError,
    where: str = "",
) -> str:
    """The UTF-8 text of the regular file ``path``, at most ``limit`` bytes; else ``error``.

    A directory, a device (``/dev/zero``), a FIFO or a socket (``/dev/stdin`` on a
    terminal or a pipe) is refused before it is opened, so nothing is read from it. The
    size is checked before reading, and the read itself stops at ``limit + 1`` bytes
    (files in /proc report a size of 0). Line ends are kept as they are. Problems raise
    ``error([Problem(where, ...)], str(path))``: a ScenarioError (or a subclass), which
    the CLI prints before exiting 2.
    """
    path = Path(path)

    def fail(message: str) -> ScenarioError:
        return error([Problem(where, f"cannot read {path}: {message}")], str(path))

    allowed = f"a {what} must be a regular file of at most {size_text(limit)}"
    try:
        mode = os.stat(path).st_mode
        kind = next((name for test, name in _KINDS if test(mode)), None)
        if kind is None and not stat.S_ISREG(mode):
            kind = "not a regular file"
        if kind is not None:
            raise fail(f"{kind}, not a regular file ({allowed})")
        # O_NONBLOCK: should the path become a FIFO after the check, opening it does not wait
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise fail(f"not a regular file ({allowed})")
            if st.st_size > limit:
                raise fail(f"{size_text(st.st_size)} is too big ({allowed})")
            data = f.read(limit + 1)
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    if len(data) > limit:
        raise fail(f"more than {size_text(limit)} is too big ({allowed})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    try:  # a read-only or full disk, a path through a file: OutputError names it
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise OutputError(path, exc) from exc
    try:
        with os.fdopen(fd, "w", newline="") as f:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private; a result file is not
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(path, exc) from exc
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
        self._fd = -1
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(self.path, exc) from exc

    def append(self, values: list) -> None:
        data = csv_line(values).encode()
        try:
            written = os.write(self._fd, data)
        except OSError as exc:
            raise OutputError(self.path, exc) from exc
        if written != len(data):  # only a full disk does this; say so rather than tear the row
            reason = f"short write ({written} of {len(data)} bytes): is the disk full?"
            raise OutputError(self.path, reason)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.fsync(fd)
            except OSError as exc:
                raise OutputError(self.path, exc) from exc
            finally:
                os.close(fd)

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
