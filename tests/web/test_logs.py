"""Bounded log reads agree with `read_from`; tails and cursors sit on record boundaries."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from meta_harness.base.errors import UsageError
from meta_harness.base.jsonl import read_from
from meta_harness.web.logs import check_boundary, log_end, read_window, tail_start


def messy_log(path: Path, rng: random.Random) -> bytes:
    """Records, blank lines, corrupt lines, non-objects, one huge line and a torn tail."""
    parts: list[bytes] = []
    for i in range(300):
        roll = rng.random()
        if roll < 0.05:
            parts.append(b"\n")
        elif roll < 0.08:
            parts.append(b"{not json\n")
        elif roll < 0.1:
            parts.append(b"[1, 2]\n")
        elif i == 150:
            parts.append(orjson.dumps({"i": i, "big": "z" * 5000}) + b"\n")
        else:
            parts.append(orjson.dumps({"i": i, "pad": "p" * rng.randint(0, 200)}) + b"\n")
    parts.append(b'{"torn": ')
    data = b"".join(parts)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("window", [1, 7, 64, 1000, 1 << 20])
def test_windowed_reads_return_exactly_what_read_from_returns(tmp_path: Path, window: int) -> None:
    path = tmp_path / "log.jsonl"
    messy_log(path, random.Random(window))
    expected, expected_end = read_from(path)
    got: list[tuple[int, dict[str, object]]] = []
    offset = 0
    while True:
        records, nxt = read_window(path, offset, window)
        got.extend(records)
        if nxt == offset:
            break
        offset = nxt
    assert got == expected
    assert offset == expected_end == log_end(path)


def test_a_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert read_window(tmp_path / "none", 0) == ([], 0)
    assert log_end(tmp_path / "none") == 0
    assert tail_start(tmp_path / "none", 100) == 0


def test_every_tail_starts_on_a_record_boundary(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    data = messy_log(path, random.Random(3))
    boundaries = {0} | {i + 1 for i, b in enumerate(data) if b == ord("\n")}
    end = log_end(path)
    for tail in range(0, len(data) + 10, 37):
        first = min((b for b in boundaries if b >= len(data) - tail), default=end)
        assert tail_start(path, tail) == first


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (3, False), (10**9, False)])
def test_cursors_must_be_record_boundaries(tmp_path: Path, offset: int, ok: bool) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n')
    if ok:
        assert check_boundary(path, offset, "log") == offset
    else:
        with pytest.raises(UsageError):
            check_boundary(path, offset, "log")
    assert check_boundary(path, 8, "log") == 8
    assert check_boundary(path, 16, "log") == 16
