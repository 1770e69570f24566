"""Atomic snapshots and published drop files: whole or not at all, never a stray temp."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from meta_harness.base.fs import TMP_PREFIX, atomic_write, remove_stale_temps, write_new


def names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


class Boom(Exception):
    pass


def test_atomic_write_creates_a_file_with_exactly_the_data(tmp_path: Path) -> None:
    target = tmp_path / "task.json"
    atomic_write(target, b'{"a": 1}\n')
    assert target.read_bytes() == b'{"a": 1}\n'
    assert names(tmp_path) == ["task.json"]


def test_atomic_write_replaces_the_old_content_whole(tmp_path: Path) -> None:
    target = tmp_path / "task.json"
    target.write_bytes(b"old content that is longer than the new one")
    atomic_write(target, b"new", durable=False)
    assert target.read_bytes() == b"new"
    assert names(tmp_path) == ["task.json"]


def test_atomic_write_applies_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    atomic_write(target, b"x", mode=0o600)
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("bad", [None, 12, "text, not bytes", object()], ids=repr)
def test_atomic_write_with_bad_data_keeps_the_old_content_and_leaves_no_temp(
    tmp_path: Path, bad: Any
) -> None:
    target = tmp_path / "task.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(target, bad)
    assert target.read_bytes() == b"old"
    assert names(tmp_path) == ["task.json"]


def test_atomic_write_failing_mid_write_keeps_the_old_content_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "task.json"
    target.write_bytes(b"old")
    real_write = os.write
    calls = 0

    def half_then_fail(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new content " * 100)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert names(tmp_path) == ["task.json"]


def test_atomic_write_whose_rename_fails_keeps_the_old_content_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "task.json"
    target.write_bytes(b"old")

    def refuse(src: Any, dst: Any) -> None:
        raise Boom("rename failed")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(Boom):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert names(tmp_path) == ["task.json"]


def test_write_new_publishes_the_whole_file_under_its_final_name(tmp_path: Path) -> None:
    target = tmp_path / "msg.json"
    data = b"x" * 300_000
    write_new(target, data)
    assert target.read_bytes() == data
    assert names(tmp_path) == ["msg.json"]


def test_write_new_writes_through_short_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def short(fd: int, data: Any) -> int:
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", short)
    target = tmp_path / "msg.json"
    write_new(target, b'{"text": "a longer message than seven bytes"}')
    monkeypatch.undo()
    assert target.read_bytes() == b'{"text": "a longer message than seven bytes"}'


def test_write_new_never_exposes_a_partial_file_under_the_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_during_write: list[list[str]] = []
    real_write = os.write
    calls = 0

    def half_then_fail(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        seen_during_write.append(names(tmp_path))
        if calls == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    target = tmp_path / "msg.json"
    with pytest.raises(OSError):
        write_new(target, b"y" * 1000)
    monkeypatch.undo()
    assert not target.exists()
    assert names(tmp_path) == []
    for listing in seen_during_write:  # only a dot-name existed while bytes were going in
        assert all(n.startswith(TMP_PREFIX) for n in listing)


def test_write_new_whose_rename_fails_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: Any, dst: Any) -> None:
        raise Boom("rename failed")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(Boom):
        write_new(tmp_path / "msg.json", b"data")
    monkeypatch.undo()
    assert names(tmp_path) == []


def test_remove_stale_temps_deletes_only_temp_files(tmp_path: Path) -> None:
    (tmp_path / f"{TMP_PREFIX}task.json.abcd").write_bytes(b"half")
    (tmp_path / f"{TMP_PREFIX}x.1234").write_bytes(b"half")
    (tmp_path / "task.json").write_bytes(b"keep")
    (tmp_path / ".other").write_bytes(b"keep")
    assert remove_stale_temps(tmp_path) == 2
    assert names(tmp_path) == [".other", "task.json"]


def test_remove_stale_temps_in_a_missing_directory_removes_nothing(tmp_path: Path) -> None:
    assert remove_stale_temps(tmp_path / "absent") == 0
