"""Killing a command at random moments, as a crash would."""

from __future__ import annotations

import random
import signal
import subprocess
import time


def kill_repeatedly(command: list[str], env: dict[str, str], rng: random.Random, runs: int, window: tuple[float, float],
                    after_each=None, progress=None) -> int:  # noqa: ANN001
    """Start ``command`` ``runs`` times and SIGKILL each at a random moment: ``window`` seconds after its start, or,
    given ``progress`` (a count that grows as the command works), once that grew by a random amount in ``window``
    (so the kills land mid-work however fast the machine is). Returns the kills."""
    kills = 0
    for _ in range(runs):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if progress is None:
            time.sleep(rng.uniform(*window))
        else:
            target = progress() + rng.randint(int(window[0]), int(window[1]))
            while process.poll() is None and progress() < target:
                time.sleep(0.01)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        if after_each is not None:
            after_each()
    return kills
