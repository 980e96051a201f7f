"""Change beacons (``lookalike.beacon``): a watched value is read again exactly when a writer, in this process or
another, signalled, or when the beacon was silent for ``recheck_s``; without a usable beacon, every time."""

import subprocess
import sys
import time

from lookalike.beacon import Beacon, Watched


class Source:
    """A value that changes behind the watcher's back, counting its reads."""

    def __init__(self) -> None:
        self.value, self.reads = 0, 0

    def read(self) -> int:
        self.reads += 1
        return self.value


def test_read_again_only_after_a_signal(tmp_path):
    source, beacon = Source(), Beacon(tmp_path / "x.changes")
    watched = Watched(source.read, beacon, recheck_s=60)
    assert [watched() for _ in range(100)] == [0] * 100 and source.reads == 1
    source.value = 1
    assert watched() == 0  # changed without a signal: not seen yet
    Beacon(tmp_path / "x.changes").signal()  # another writer in this process
    assert watched() == 1 and watched() == 1 and source.reads == 2
    source.value = 2
    subprocess.run([sys.executable, "-c", "import sys, pathlib; from lookalike.beacon import Beacon; "
                    "Beacon(pathlib.Path(sys.argv[1])).signal()", str(tmp_path / "x.changes")], check=True)
    assert watched() == 2 and source.reads == 3  # another process's signal is seen at once
    beacon.close()


def test_a_silent_beacon_is_trusted_for_recheck_s_only(tmp_path):
    source = Source()
    watched = Watched(source.read, Beacon(tmp_path / "x.changes"), recheck_s=0.05)
    assert watched() == 0
    source.value = 1
    assert watched() == 0
    time.sleep(0.08)
    assert watched() == 1


def test_without_a_usable_beacon_every_call_reads(tmp_path):
    for beacon in (None, Beacon(tmp_path / "missing-folder" / "x.changes")):
        source = Source()
        watched = Watched(source.read, beacon, recheck_s=60)
        for value in range(5):
            source.value = value
            assert watched() == value
        assert source.reads == 5
    Beacon(tmp_path / "missing-folder" / "x.changes").signal()  # a writer without a beacon goes on


def test_a_reader_that_creates_the_beacon_sees_the_first_writers_signal(tmp_path):
    source = Source()
    watched = Watched(source.read, Beacon(tmp_path / "new.changes"), recheck_s=60)
    assert watched() == 0 and (tmp_path / "new.changes").stat().st_size == 8
    source.value = 1
    Beacon(tmp_path / "new.changes").signal()
    assert watched() == 1
