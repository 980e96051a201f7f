"""Serving speed of this checkout against another one, side by side in one run, on the same home.

    git worktree add /tmp/base <commit>
    python benchmarks/serving_versus.py --home ~/.lookalike --baseline-src /tmp/base/src --rounds 2

``--baseline-home`` gives the baseline a home of its own: the same catalog indexed with the model as the baseline's
code runs it (a copy of the home, reindexed), when the two versions compute embeddings differently.

For each round, each version in turn (baseline first): a `lookalike serve --workers N` whose code comes from that
``src`` (``PYTHONPATH``), then
- sequential searches (one worker): latency and the server's CPU per search;
- closed loop: ``--clients`` clients searching back to back for ``--seconds`` with ``--workers`` processes;
- open loop: ``--rate`` searches/s arriving at random for ``--seconds`` with ``--workers`` processes.
With ``--floor``, the floor server (``floor_server.py``) too. The request bodies, arrival times and home are the same
for all. Results go to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from common import FLOOR, SERVE, process_tree_cpu, server_process, write_results
from query_latency import bodies, load, open_loop, sequential

CURRENT = str(Path(__file__).resolve().parents[1] / "src")


def one_version(src: str, home: Path, requests: list[tuple[bytes, str]], sequential_n: int, clients: int,
                seconds: float, rate: float, workers: int, seed: int, program: tuple[str, ...] = SERVE
                ) -> dict[str, Any]:
    """One version's figures (``clients`` 0: the sequential ones only; ``program``: the server to start)."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = src
    try:
        result: dict[str, Any] = {}
        with server_process(home, program=program, workers="1") as (base, server):
            sequential(base, requests[:20])
            before = process_tree_cpu(server.pid)
            result["sequential"] = sequential(base, requests[:sequential_n], warmup=0)
            result["sequential"]["server_cpu_ms_per_search"] = round(
                (process_tree_cpu(server.pid) - before) * 1000 / sequential_n, 2)
        if not clients:
            return result
        with server_process(home, program=program, workers=str(workers)) as (base, server):
            load(base, requests, clients, min(5.0, seconds))  # warm-up
            result[f"closed_loop_{workers}_workers"] = load(base, requests, clients, seconds, server.pid)
            result[f"open_loop_{workers}_workers"] = open_loop(base, requests, rate, seconds, seed=seed,
                                                               server=server.pid)
        return result
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--baseline-src", required=True, help="the other checkout's src directory")
    parser.add_argument("--baseline-home", type=Path, help="the baseline's own home (default: --home)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--clients", type=int, default=32, help="0: sequential searches only")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--floor", action="store_true", help="also the floor server (floor_server.py: HTTP, decoding "
                        "and the model, nothing else), for what no search server here could beat")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serving_versus.json")
    args = parser.parse_args()
    requests = bodies(500, 5)
    rounds = []
    for round_number in range(args.rounds):
        versions = [("baseline", args.baseline_src, args.baseline_home or args.home, SERVE),
                    ("current", CURRENT, args.home, SERVE)]
        if args.floor:
            versions.append(("floor", CURRENT, args.home, FLOOR))
        rounds.append({name: one_version(src, home, requests, args.sequential, args.clients, args.seconds,
                                         args.rate, args.workers, seed=round_number, program=program)
                       for name, src, home, program in versions})
        print(json.dumps(rounds[-1], indent=2), flush=True)
    write_results(args.out, rounds=rounds)


if __name__ == "__main__":
    main()
