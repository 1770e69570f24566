"""Append-only JSON Lines logs: torn tails, corrupt lines, resumable reads, durable appends."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from meta_harness.base.jsonl import JsonlWriter, dumps, read_from, read_records


def test_a_torn_last_line_is_ignored_by_readers(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(dumps({"n": 1}) + dumps({"n": 2}) + b'{"n": 3, "tor')
    assert read_records(log) == [{"n": 1}, {"n": 2}]


def test_a_torn_last_line_is_left_for_a_later_read_and_then_returned_whole(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(dumps({"n": 1}) + b'{"n": ')
    records, offset = read_from(log)
    assert [r for _, r in records] == [{"n": 1}]
    with open(log, "ab") as f:
        f.write(b"2}\n")
    records, _ = read_from(log, offset)
    assert records == [(offset, {"n": 2})]


def test_opening_a_writer_truncates_a_torn_last_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    whole = dumps({"n": 1}) + dumps({"n": 2})
    log.write_bytes(whole + b'{"n": 3, "half')
    writer = JsonlWriter.open(log)
    try:
        assert log.read_bytes() == whole
        writer.append([{"n": 4}], durable=True)
    finally:
        writer.close()
    assert read_records(log) == [{"n": 1}, {"n": 2}, {"n": 4}]


def test_opening_a_writer_on_a_file_that_is_only_a_torn_line_empties_it(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b'{"never finished"')
    JsonlWriter.open(log).close()
    assert log.read_bytes() == b""


def test_opening_a_writer_cuts_a_torn_line_longer_than_one_read_block(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    whole = dumps({"n": 1})
    log.write_bytes(whole + b'{"big": "' + b"x" * 200_000)
    JsonlWriter.open(log).close()
    assert log.read_bytes() == whole


def test_opening_a_writer_leaves_a_complete_log_alone(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    whole = dumps({"n": 1}) + dumps({"n": 2})
    log.write_bytes(whole)
    JsonlWriter.open(log).close()
    assert log.read_bytes() == whole


@pytest.mark.parametrize(
    "bad_line",
    [b"not json", b'{"unterminated": ', b"[1, 2, 3]", b'"a string"', b"\xff\xfe binary"],
    ids=["text", "broken-json", "array", "string", "binary"],
)
def test_a_corrupt_or_non_object_middle_line_is_skipped(tmp_path: Path, bad_line: bytes) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(dumps({"n": 1}) + bad_line + b"\n" + dumps({"n": 2}))
    assert read_records(log) == [{"n": 1}, {"n": 2}]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(dumps({"n": 1}) + b"\n   \n" + dumps({"n": 2}))
    assert read_records(log) == [{"n": 1}, {"n": 2}]


def test_read_from_offsets_resume_exactly_where_the_last_read_ended(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    writer = JsonlWriter.open(log)
    try:
        writer.append([{"n": 1}, {"n": 2}], durable=False)
        first, offset = read_from(log)
        assert [r for _, r in first] == [{"n": 1}, {"n": 2}]
        assert offset == log.stat().st_size
        again, same = read_from(log, offset)
        assert again == [] and same == offset
        writer.append([{"n": 3}], durable=False)
        writer.append([{"n": 4}], durable=False)
        second, end = read_from(log, offset)
    finally:
        writer.close()
    assert [r for _, r in second] == [{"n": 3}, {"n": 4}]
    assert end == log.stat().st_size


def test_each_record_carries_the_offset_it_starts_at(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(dumps({"n": 1}) + dumps({"n": 2}))
    records, _ = read_from(log)
    data = log.read_bytes()
    for start, record in records:
        end = data.index(b"\n", start)
        assert orjson.loads(data[start:end]) == record


def test_reading_a_missing_log_gives_nothing(tmp_path: Path) -> None:
    assert read_records(tmp_path / "absent.jsonl") == []
    assert read_from(tmp_path / "absent.jsonl", 7) == ([], 7)


def test_a_durable_append_is_fsynced_and_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    log = tmp_path / "log.jsonl"
    records = [{"op": "msg", "id": f"m{i}", "text": 'é\n"quoted"'} for i in range(3)]
    writer = JsonlWriter.open(log)
    try:
        written = writer.append(records, durable=True)
        assert writer.size() == written
    finally:
        writer.close()
    assert len(synced) == 1  # one write, one fdatasync for the whole batch
    assert read_records(log) == records


def test_a_non_durable_append_does_not_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fdatasync", synced.append)
    writer = JsonlWriter.open(tmp_path / "log.jsonl")
    try:
        writer.append([{"n": 1}], durable=False)
        assert writer.append([], durable=True) == 0
    finally:
        writer.close()
    assert synced == []


def test_closing_a_writer_twice_is_harmless(tmp_path: Path) -> None:
    writer = JsonlWriter.open(tmp_path / "log.jsonl")
    writer.close()
    writer.close()
