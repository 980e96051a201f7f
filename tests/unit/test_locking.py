"""WriteLock: reentrant within a thread, exclusive between threads and between processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from lookalike.locking import WriteLock

CHILD = """
import sys, time
from pathlib import Path
from lookalike.locking import WriteLock
print("started", flush=True)
with WriteLock(Path(sys.argv[1])):
    print(f"acquired {time.time()!r}", flush=True)
"""


def _in_thread(fn, timeout: float = 10.0) -> bool:  # noqa: ANN001
    """Runs ``fn`` in a daemon thread; whether it finished within ``timeout`` (a deadlock does not)."""
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def test_nested_acquire_in_one_thread_does_not_deadlock(tmp_path: Path) -> None:
    path = tmp_path / "home" / "write.lock"
    lock, other = WriteLock(path), WriteLock(path)
    entered: list[int] = []

    def nested() -> None:
        with lock:
            with lock, other:
                entered.append(2)
            entered.append(1)
        with lock:  # released completely: it can be taken again
            entered.append(0)

    assert _in_thread(nested)
    assert entered == [2, 1, 0]
    assert path.exists()


def test_another_thread_waits_until_it_is_released(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "write.lock")
    events: list[str] = []

    def other() -> None:
        with lock:
            events.append("other")

    with lock:
        waiter = threading.Thread(target=other)
        waiter.start()
        time.sleep(0.3)
        events.append("holder")
    waiter.join(10)
    assert not waiter.is_alive()
    assert events == ["holder", "other"]


def test_another_process_waits_until_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "write.lock"
    with WriteLock(path):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "started"
            time.sleep(0.5)  # the child tries to lock meanwhile
            assert child.poll() is None
            released = time.time()
        except BaseException:
            child.kill()
            raise
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    acquired = float(out.split()[1])
    assert acquired >= released
