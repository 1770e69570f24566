"""`jsonl.read_reversed` and `jsonl.end_offset`: reading a log from its end."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from meta_harness.base.jsonl import end_offset, read_from, read_reversed

RECORDS = [{"i": i, "pad": "x" * (i * 37 % 300)} for i in range(500)]
LOG = b"".join(orjson.dumps(r) + b"\n" for r in RECORDS)


@pytest.mark.parametrize("block", [1, 7, 100, 4096, 1 << 16])
def test_records_come_back_last_first_whatever_the_block_size(tmp_path: Path, block: int) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(LOG + b'{"torn": "' + b"y" * 5000)
    assert list(read_reversed(path, block=block)) == RECORDS[::-1]


def test_corrupt_lines_are_skipped_and_a_missing_log_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a":1}\nnot json\n[1,2]\n{"b":2}\n')
    assert list(read_reversed(path, block=3)) == [{"b": 2}, {"a": 1}]
    assert list(read_reversed(tmp_path / "missing.jsonl")) == []


def test_a_follower_starting_at_end_offset_sees_only_whole_new_records(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    assert end_offset(path) == 0
    path.write_bytes(LOG + b'{"half":')
    start = end_offset(path)
    assert start == len(LOG)
    with open(path, "ab") as f:
        f.write(b' 1}\n{"next": 2}\n')
    records, _ = read_from(path, start)
    assert [r for _, r in records] == [{"half": 1}, {"next": 2}]
