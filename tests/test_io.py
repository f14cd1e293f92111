"""Tests for simlab.io: atomic whole-file writes, one-write-per-row appends, tolerant reads."""

from __future__ import annotations

import csv
import os

import pytest

from simlab.io import RowAppender, csv_line, read_rows, write_atomic, write_rows

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
    with pytest.raises(OSError, match="disk on fire"):
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
    with pytest.raises(PermissionError):
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
    with pytest.raises(OSError, match="short write"):
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
