"""Category precision@1 of `lookalike search --json` output, judged against a manifest's categories.

    lookalike search $(python benchmarks/cli_precision.py --sample MANIFEST --n 1000) --json > results.jsonl
    python benchmarks/cli_precision.py --manifest MANIFEST results.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter

from lookalike.data.sources import read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", help="JSON lines from `lookalike search --json`")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--sample", action="store_true", help="print N test-split paths (seeded) and exit")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    entries = read_manifest(args.manifest)
    if args.sample:
        split = [e for e in entries if e.metadata.get("split") == args.split]
        print("\n".join(str(e.path) for e in random.Random(0).sample(split, min(args.n, len(split)))))
        return
    truth = {str(e.path): e.category for e in entries}
    with open(args.results) as fh:
        lines = [json.loads(line) for line in fh if line.strip()]
    answered = [line for line in lines if "results" in line and line["results"]]
    correct: Counter[bool] = Counter()
    for line in answered:
        correct[truth[line["query"]] == line["results"][0]["category"]] += 1
    total = len(answered)
    print(json.dumps({"queries": len(lines), "answered": total, "precision_at_1": correct[True] / max(total, 1),
                      "median_took_ms": sorted(line["took_ms"] for line in answered)[total // 2] if total else None}))
    sys.exit(0 if total == len(lines) else 1)


if __name__ == "__main__":
    main()
