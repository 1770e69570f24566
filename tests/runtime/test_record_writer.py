"""RecordWriter: queued task.json writes land in order, newest wins, nothing queued is lost
on close, and a synchronous write is never overtaken by an older queued one."""

from __future__ import annotations

from pathlib import Path

from meta_harness.runtime.record_writer import RecordWriter


def test_the_newest_queued_content_of_a_path_is_what_lands(tmp_path: Path) -> None:
    writer = RecordWriter()
    path = tmp_path / "task.json"
    for i in range(200):
        writer.write_later(path, b"%d" % i)
    writer.close()
    assert path.read_bytes() == b"199"


def test_a_synchronous_write_is_never_overtaken_by_an_older_queued_one(tmp_path: Path) -> None:
    writer = RecordWriter()
    paths = [tmp_path / f"t{i}.json" for i in range(20)]
    for round_ in range(50):
        for path in paths:
            writer.write_later(path, b"queued %d" % round_)
        writer.write_now(paths[round_ % len(paths)], b"now %d" % round_, durable=False)
        # the path written now must hold that content until it is queued again
        assert paths[round_ % len(paths)].read_bytes() == b"now %d" % round_
    writer.close()
    for i, path in enumerate(paths):
        last_now = max(r for r in range(50) if r % len(paths) == i)
        assert path.read_bytes() == (b"now %d" % last_now if last_now == 49 else b"queued 49")


def test_close_writes_everything_queued_and_later_writes_are_synchronous(tmp_path: Path) -> None:
    writer = RecordWriter()
    paths = [tmp_path / f"t{i}.json" for i in range(100)]
    for path in paths:
        writer.write_later(path, path.name.encode())
    writer.close()
    assert all(p.read_bytes() == p.name.encode() for p in paths)
    late = tmp_path / "late.json"
    writer.write_later(late, b"late")
    assert late.read_bytes() == b"late"


def test_a_write_into_a_vanished_directory_is_logged_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    writer = RecordWriter()
    writer.write_later(tmp_path / "gone" / "task.json", b"x")
    writer.write_later(tmp_path / "ok.json", b"ok")
    writer.close()
    assert (tmp_path / "ok.json").read_bytes() == b"ok"
    assert not (tmp_path / "gone").exists()
