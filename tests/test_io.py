"""Tests for simlab.io: atomic whole-file writes, one-write-per-row appends, tolerant reads."""

from __future__ import annotations

import csv
import errno
import os

import pytest

from simlab.errors import OutputError, ScenarioError
from simlab.io import (
    INPUT_LIMIT,
    OUTPUT_LIMIT,
    RowAppender,
    csv_line,
    read_rows,
    read_text,
    size_text,
    write_atomic,
    write_rows,
)

HEADER = ["point_id", "replication", "text"]


def _leftovers(directory, name):
    """Temporary files write_atomic may have left beside ``name``."""
    return [p.name for p in directory.iterdir() if p.name != name]


# -- write_atomic -------------------------------------------------------------------------


def test_write_atomic_writes_the_text_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"  # the directory is created
    write_atomic(path, "first\nline, two\n")
    assert path.read_text() == "first\nline, two\n"
    write_atomic(path, "second")
    assert path.read_text() == "second"
    assert _leftovers(path.parent, "out.txt") == []


def test_write_atomic_keeps_bytes_exact(tmp_path):
    """No newline translation: what is written is what is on disk."""
    path = tmp_path / "out.csv"
    write_atomic(path, "a\r\nb\rc\n")
    assert path.read_bytes() == b"a\r\nb\rc\n"


def test_write_atomic_failure_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    write_atomic(path, "old contents\n")

    def boom(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OutputError, match="disk on fire"):
        write_atomic(path, "new contents that never land\n")
    monkeypatch.undo()
    assert path.read_text() == "old contents\n"
    assert _leftovers(tmp_path, "out.txt") == []


def test_write_atomic_interrupt_during_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    """A Ctrl-C (a BaseException, not an Exception) mid-write is cleaned up too."""
    path = tmp_path / "out.txt"
    write_atomic(path, "old\n")

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert _leftovers(tmp_path, "out.txt") == []


def test_write_atomic_failing_rename_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    write_atomic(path, "old\n")

    def no_rename(src, dst):
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OutputError, match="read-only"):
        write_atomic(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert _leftovers(tmp_path, "out.txt") == []


# -- RowAppender --------------------------------------------------------------------------


def test_row_appender_writes_one_row_per_os_write(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    write_rows(path, HEADER, [])
    calls = []
    real_write = os.write

    def spy(fd, data):
        calls.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    rows = [["a", 0, "plain"], ["b", 1, "with, comma"], ["c", 2, 'multi\nline "quoted"']]
    with RowAppender(path) as appender:
        for i, row in enumerate(rows, start=1):
            appender.append(row)
            # each append is on disk at once (no user-space buffer), as exactly one write
            assert len(calls) == i
            assert calls[-1] == csv_line(row).encode()
            assert path.read_bytes().endswith(calls[-1])
    header, back = read_rows(path)
    assert header == HEADER
    assert back == [[str(v) for v in r] for r in rows]


def test_row_appender_appends_to_an_existing_file_and_creates_a_missing_one(tmp_path):
    path = tmp_path / "rows.csv"
    with RowAppender(path) as appender:  # created
        appender.append(HEADER)
        appender.append(["a", 0, "x"])
    with RowAppender(path) as appender:  # appended, not truncated
        appender.append(["b", 1, "y"])
    assert read_rows(path) == (HEADER, [["a", "0", "x"], ["b", "1", "y"]])


def test_row_appender_short_write_raises(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    monkeypatch.setattr(os, "write", lambda fd, data: len(data) - 1)
    appender = RowAppender(path)
    with pytest.raises(OutputError, match="short write"):
        appender.append(["a", 0, "x"])
    monkeypatch.undo()
    appender.close()
    appender.close()  # closing twice is harmless


def test_none_is_written_as_an_empty_field(tmp_path):
    assert csv_line(["a", None, 1.5]) == "a,,1.5\r\n"  # RFC 4180 line ends


TRICKY = [
    ["p1", "0", "a, b, c"],
    ["p2", "1", 'she said "hi"'],
    ["p3", "2", "line one\nline two"],
    ["p4", "3", '"", ,\n,"\n'],
    ["p5", "4", ""],
    ["p6", "5", "ünïcödé ✓"],
]


def test_rows_with_commas_quotes_and_newlines_round_trip(tmp_path):
    path = tmp_path / "rows.csv"
    write_rows(path, HEADER, TRICKY[:2])
    with RowAppender(path) as appender:
        for row in TRICKY[2:]:
            appender.append(row)
    assert read_rows(path) == (HEADER, TRICKY)
    # and any csv reader agrees
    with open(path, newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [HEADER, *TRICKY]


@pytest.mark.parametrize("text", ["windows\r\nline", "lone\rreturn"])
def test_rows_with_carriage_returns_round_trip(tmp_path, text):
    path = tmp_path / "rows.csv"
    write_rows(path, HEADER, [])
    with RowAppender(path) as appender:
        appender.append(["p", "0", text])
        appender.append(["q", "1", "after"])
    assert read_rows(path) == (HEADER, [["p", "0", text], ["q", "1", "after"]])


# -- read_rows ----------------------------------------------------------------------------


def test_read_rows_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "rows.csv"
    write_rows(path, HEADER, [["a", "0", "x"], ["b", "1", "y"]])
    with open(path, "a", newline="") as f:
        f.write("c,2,half a ro")  # a kill in the middle of a row: no newline
    assert read_rows(path) == (HEADER, [["a", "0", "x"], ["b", "1", "y"]])


def test_read_rows_drops_a_torn_line_with_the_right_number_of_commas(tmp_path):
    """Torn inside the last field: as many fields as the header, still no newline."""
    path = tmp_path / "rows.csv"
    write_rows(path, HEADER, [["a", "0", "x"]])
    with open(path, "a", newline="") as f:
        f.write("c,2,trunc")
    assert read_rows(path) == (HEADER, [["a", "0", "x"]])


def test_read_rows_drops_a_row_torn_inside_a_quoted_newline(tmp_path):
    path = tmp_path / "rows.csv"
    write_rows(path, HEADER, [["a", "0", "x"]])
    with open(path, "a", newline="") as f:
        f.write('c,2,"first line\n')  # the row was 'c,2,"first line\nsecond line"\n'
    assert read_rows(path) == (HEADER, [["a", "0", "x"]])


def test_read_rows_drops_rows_of_the_wrong_length(tmp_path):
    path = tmp_path / "rows.csv"
    with open(path, "w", newline="") as f:
        f.write("a,b,c\n1,2,3\n1,2\n1,2,3,4\n\n4,5,6\n")
    assert read_rows(path) == (["a", "b", "c"], [["1", "2", "3"], ["4", "5", "6"]])


def test_read_rows_of_an_empty_or_header_only_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert read_rows(empty) == ([], [])
    torn_header = tmp_path / "torn.csv"
    torn_header.write_text("point_id,repl")  # killed while writing the header
    assert read_rows(torn_header) == ([], [])
    header_only = tmp_path / "header.csv"
    write_rows(header_only, HEADER, [])
    assert read_rows(header_only) == (HEADER, [])


def test_write_rows_is_atomic_and_complete(tmp_path):
    path = tmp_path / "rows.csv"
    write_rows(path, HEADER, TRICKY)
    assert read_rows(path) == (HEADER, TRICKY)
    assert _leftovers(tmp_path, "rows.csv") == []


def test_write_atomic_gives_an_ordinary_file_mode(tmp_path):
    import os

    path = tmp_path / "result.json"
    write_atomic(path, "{}\n")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


# -- a disk that refuses: OutputError (a ScenarioError) naming the path and the OS's reason ---


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("call", ["write", "replace", "mkstemp"])
def test_a_full_disk_is_an_output_error_and_the_old_file_stays(tmp_path, monkeypatch, call):
    path = tmp_path / "out.csv"
    write_atomic(path, "old\n")
    target = {"write": (os, "fsync"), "replace": (os, "replace"), "mkstemp": None}[call]
    if target is None:
        import tempfile

        target = (tempfile, "mkstemp")
    monkeypatch.setattr(*target, _enospc)
    with pytest.raises(OutputError) as caught:
        write_atomic(path, "new\n")
    monkeypatch.undo()
    assert isinstance(caught.value, ScenarioError) and caught.value.errno == errno.ENOSPC
    assert str(path) in str(caught.value) and "No space left on device" in str(caught.value)
    assert path.read_text() == "old\n" and _leftovers(tmp_path, "out.csv") == []


def test_a_path_through_a_file_is_an_output_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path in (blocker / "x.csv", blocker / "deeper" / "x.csv"):
        with pytest.raises(OutputError, match="is a file, not a directory"):
            write_atomic(path, "text")
        with pytest.raises(OutputError, match="x.csv"):
            RowAppender(path)


def test_a_read_only_place_is_an_output_error(tmp_path, monkeypatch):
    """/proc refuses new files even to root; a PermissionError is what a chmod 0o500 gives."""
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic("/proc/simlab-test/out.csv", "text")
    with pytest.raises(OutputError, match="cannot write"):
        RowAppender("/proc/simlab-test.csv")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OutputError, match="Permission denied"):
        RowAppender(tmp_path / "rows.csv")


def test_a_full_disk_while_appending_keeps_the_rows_before(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    with RowAppender(path) as appender:
        appender.append(HEADER)
        appender.append(["p1", 0, "kept"])
        monkeypatch.setattr(os, "write", _enospc)
        with pytest.raises(OutputError, match="No space left"):
            appender.append(["p1", 1, "lost"])
        monkeypatch.setattr(os, "write", lambda fd, data: len(data) // 2)  # a short write
        with pytest.raises(OutputError, match="short write"):
            appender.append(["p1", 2, "torn"])
        monkeypatch.undo()
    assert read_rows(path) == (HEADER, [["p1", "0", "kept"]])


# -- read_text: bounded reads of files a user hands in (issue 17) ---------------------------


def test_read_text_reads_a_regular_file_exactly(tmp_path):
    path = tmp_path / "in.yaml"
    path.write_bytes("name: café\r\nx: 1\n".encode())
    assert read_text(path) == "name: café\r\nx: 1\n"  # line ends kept


def test_read_text_refuses_a_file_over_the_limit_before_reading(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "wb") as f:
        f.truncate(3 << 20)  # sparse: nothing to read if the size is checked first
    with pytest.raises(ScenarioError) as info:
        read_text(path, limit=INPUT_LIMIT, what="scenario file")
    message = str(info.value)
    assert str(path) in message
    assert "3 MiB is too big (a scenario file must be a regular file of at most 1 MiB)" in message
    path.write_text("x" * 100)
    assert read_text(path, limit=100) == "x" * 100
    with pytest.raises(ScenarioError, match="100 bytes is too big"):
        read_text(path, limit=99)


def test_read_text_limits_the_read_itself():
    """Files in /proc report a size of 0 but have contents: the read stops at the limit."""
    if not os.path.isfile("/proc/self/status"):
        pytest.skip("no procfs")
    with pytest.raises(ScenarioError, match="more than 16 bytes is too big"):
        read_text("/proc/self/status", limit=16)


@pytest.mark.parametrize(
    ("device", "kind"), [("/dev/zero", "a character device"), ("/dev/null", "a character device")]
)
def test_read_text_refuses_devices_without_reading(device, kind):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    with pytest.raises(ScenarioError) as info:
        read_text(device)
    assert f"cannot read {device}: {kind}, not a regular file" in str(info.value)


def test_read_text_refuses_stdin_unless_it_is_a_regular_file(tmp_path):
    """/dev/stdin on a terminal or a pipe would block or never end: refused; a file
    redirected to stdin is a regular file, bounded like any other."""
    r, w = os.pipe()
    saved = os.dup(0)
    try:
        os.dup2(r, 0)
        with pytest.raises(ScenarioError, match="a FIFO \\(named pipe\\), not a regular file"):
            read_text("/dev/stdin")
    finally:
        os.dup2(saved, 0)
        for fd in (r, w, saved):
            os.close(fd)


def test_read_text_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError, match="a FIFO \\(named pipe\\), not a regular file"):
        read_text(fifo)


def test_read_text_refuses_a_directory_a_missing_file_and_non_utf8(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read .*: a directory, not a regular file"):
        read_text(tmp_path)
    with pytest.raises(ScenarioError, match="cannot read .*: No such file or directory"):
        read_text(tmp_path / "absent.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(
        ScenarioError, match="not a UTF-8 text file \\(invalid start byte at byte 0\\)"
    ):
        read_text(binary)


def test_read_text_raises_the_callers_error_class_and_key(tmp_path):
    class MyError(ScenarioError):
        pass

    with pytest.raises(MyError) as info:
        read_text(tmp_path, error=MyError, where="--crosscheck", what="cross-check file")
    (problem,) = info.value.problems
    assert problem.path == "--crosscheck"
    assert "a cross-check file must be a regular file of at most 1 MiB" in problem.message
    assert info.value.source == str(tmp_path)


def test_the_limits_and_their_sizes_in_words():
    assert INPUT_LIMIT == 1 << 20 and OUTPUT_LIMIT == 256 << 20
    assert size_text(0) == "0 bytes" and size_text(1023) == "1023 bytes"
    assert size_text(1536) == "1.5 KiB" and size_text(256 << 20) == "256 MiB"
    assert size_text(int(8.4 * (1 << 30))) == "8.4 GiB"
