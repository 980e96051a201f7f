"""Tests of lookalike.io.files' atomic writes: whole replacement, failures that leave the old file and no temporary
file, and concurrent writers (threads and processes) that never leave a mixed or partial file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from lookalike.io.files import atomic_path, atomic_write, write_atomically


def leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def test_atomic_write_replaces_the_destination_whole(tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"old contents, longer than the new ones")
    with atomic_write(dest) as file:
        file.write(b"new")
        assert dest.read_bytes().startswith(b"old")  # nothing shows until the block ends
    assert dest.read_bytes() == b"new"
    assert leftovers(tmp_path, dest.name) == []


def test_new_file_gets_the_mode_a_plain_open_gives(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    write_atomically(tmp_path / "atomic", b"x")
    assert stat.S_IMODE((tmp_path / "atomic").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_write_atomically_writes_text_as_utf8_and_bytes_as_is(tmp_path: Path) -> None:
    write_atomically(tmp_path / "a.json", '{"name": "café"}')
    write_atomically(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "a.json").read_bytes() == '{"name": "café"}'.encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"


@pytest.mark.parametrize("entry", ["file", "path"])
def test_failure_mid_write_keeps_the_old_file_and_no_temporary(tmp_path: Path, entry: str) -> None:
    dest = tmp_path / "head.npz"
    dest.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="disk on fire"):
        if entry == "file":
            with atomic_write(dest) as file:
                file.write(b"half of the new")
                raise RuntimeError("disk on fire")
        else:
            with atomic_path(dest) as tmp:
                tmp.write_bytes(b"half of the new")
                raise RuntimeError("disk on fire")
    assert dest.read_bytes() == b"previous"
    assert leftovers(tmp_path, dest.name) == []


def test_failure_after_the_writer_removed_its_temporary_file(tmp_path: Path) -> None:
    dest = tmp_path / "model.onnx"
    with pytest.raises(ValueError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"bad export")
        tmp.unlink()  # as a checker that discards a bad file does
        raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_is_hidden_beside_the_destination_with_its_suffix(tmp_path: Path) -> None:
    dest = tmp_path / "vectors.npy"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".") and tmp.suffix == ".npy"
        assert tmp.is_file()
        np.save(tmp, np.arange(5))  # adds no ".npy" of its own
    np.testing.assert_array_equal(np.load(dest), np.arange(5))
    assert leftovers(tmp_path, dest.name) == []


def test_file_and_folder_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomically(tmp_path / "a", b"x")
    with atomic_path(tmp_path / "b") as tmp:
        tmp.write_bytes(b"y")
    expected = [False, True] if os.name == "posix" else [False]
    assert synced == expected * 2


def payload(writer: int, round_: int, size: int = 200_000) -> bytes:
    return bytes([(writer * 31 + round_) % 251]) * size


def assert_whole(data: bytes, size: int = 200_000) -> None:
    assert len(data) == size and data == data[:1] * size, "a mixed or partial file"


def test_concurrent_thread_writers_never_corrupt_the_destination(tmp_path: Path) -> None:
    dest = tmp_path / "state.pt"
    write_atomically(dest, payload(0, 0))
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for round_ in range(30):
                if writer % 2:
                    write_atomically(dest, payload(writer, round_))
                else:
                    with atomic_path(dest) as tmp:
                        tmp.write_bytes(payload(writer, round_))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def read() -> None:
        try:
            while not stop.is_set():
                assert_whole(dest.read_bytes())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(1, 5)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert errors == []
    assert_whole(dest.read_bytes())
    assert leftovers(tmp_path, dest.name) == []


WRITER = """
import sys
from pathlib import Path
from lookalike.io.files import write_atomically
dest, writer = Path(sys.argv[1]), int(sys.argv[2])
for round_ in range(40):
    write_atomically(dest, bytes([(writer * 31 + round_) % 251]) * 200_000)
"""


def test_concurrent_process_writers_never_corrupt_the_destination(tmp_path: Path) -> None:
    dest = tmp_path / "calibration.json"
    write_atomically(dest, payload(0, 0))
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, str(dest), str(w)]) for w in (1, 2)]
    while any(p.poll() is None for p in processes):
        assert_whole(dest.read_bytes())
    assert [p.returncode for p in processes] == [0, 0]
    assert_whole(dest.read_bytes())
    assert leftovers(tmp_path, dest.name) == []
