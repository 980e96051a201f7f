"""What one search costs the server, and where: CPU per search by thread against the bare model's, in one run.

    python benchmarks/search_cost.py --home ~/.lookalike --requests 300 [--rounds 5] [--py-spy] [--raw]

Starts a real `lookalike serve` (one process) and the floor server (``floor_server.py``: the same HTTP server,
decoding and model, and nothing else: what no search server here could go below) over an ingested home, and sends
``--requests`` photo-like JPEG searches one at a time (multipart, or with ``--raw`` the image as the whole body).
Reports
- the server's CPU per search over the first pass of new uploads (all its threads, from ``/proc``), per thread,
  named with ``py-spy dump`` (threads Python does not know, ONNX Runtime's and FAISS's pools, are "native"), and by
  the server's own stage timers;
- then ``--rounds`` rounds of the same uploads, each measuring in turn the server (whose candidates' records and
  colours are in memory by then, as in a server that has run a while), the floor server, and the bare model in this
  process at batch 1 on one thread (the backbone and the head on inputs prepared beforehand; decoding and preparing
  an upload alone beside them); each round's ratios to the bare model, and the medians: the host's speed moves by a
  fifth and more within minutes, so the three are measured close together, again and again;
- with ``--py-spy``, a sampled profile of the same searches (``py-spy record``): the share of the server's busy
  samples in each stage of a search, by the innermost project or library frame that names it.
Results go to ``--out`` (JSON) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from common import FLOOR, multipart, query_jpegs, server_process, write_results

from lookalike.bootstrap import open_engine
from lookalike.config import Settings

TICKS = os.sysconf("SC_CLK_TCK")

# Stages of a search, by the first frame (from the innermost) that matches: (stage, regular expression on
# "function (file)") -- the order is the precedence.
STAGES = [
    ("backbone (ONNX Runtime)", r"\(lookalike/backbone/runtime\.py\).*__call__|FeatureExtractor.__call__|"
                                r"runtime\.py:\d+\)$"),
    ("head (ONNX Runtime)", r"embedding/head\.py"),
    ("decode + prepare upload", r"io/images\.py|featurizer\.py|backbone/runtime\.py"),
    ("query palette", r"signatures\.py"),
    ("index search", r"lookalike/index/"),
    ("catalog reads (SQL)", r"catalog/(repository|records|products|attributes)\.py.*(get_items|attributes|"
                            r"signature|select|_rows)"),
    ("history + taste writes (SQL)", r"history\.py|taste\.py|record_search"),
    ("results + JSON", r"presenters\.py|schemas\.py|confidence\.py"),
    ("multipart parsing", r"multipart|formparsers"),
    ("HTTP (uvicorn, h11/httptools)", r"uvicorn|h11|httptools"),
    ("FastAPI / Starlette routing and dependencies", r"fastapi|starlette|anyio"),
    ("event loop", r"asyncio"),
]


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of each thread of ``pid``."""
    used = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return used


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, from ``py-spy dump`` (empty when py-spy is missing)."""
    spy = shutil.which("py-spy")
    if spy is None:
        return {}
    dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60).stdout
    return {int(tid): name for tid, name in re.findall(r'^Thread (\d+) \(\w+\): "([^"]*)"', dump, re.M)}


def group(name: str | None) -> str:
    if name is None:
        return "native (ONNX Runtime, FAISS and BLAS pools)"
    if name == "MainThread":
        return "event loop (HTTP, multipart, dependencies)"
    if name.startswith("AnyIO worker"):
        return "request handlers (AnyIO threads)"
    return name


class Client:
    def __init__(self, base: str) -> None:
        url = urlparse(base)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)

    def post(self, body: bytes, content_type: str, path: str = "/api/search") -> dict[str, Any]:
        self.connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"search failed: {response.status} {payload[:300]!r}")
        return json.loads(payload)


def stage_seconds(client: Client) -> dict[str, float]:
    """The server's own timers: total seconds in each stage of a search so far (its /metrics; empty for a version
    without them)."""
    client.connection.request("GET", "/metrics")
    response = client.connection.getresponse()
    text = response.read().decode()
    if response.status != 200:
        return {}
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.labels["stage"]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "lookalike_search_stage_duration_seconds_sum"}


@contextlib.contextmanager
def bare_model(home: Path, images: list[bytes]) -> Iterator[Callable[[], dict[str, float]]]:
    """A function measuring the bare model once: CPU ms per image at batch 1 on one thread for the backbone and the
    head (on inputs prepared beforehand), and for decoding + preparing an upload alone."""
    settings = Settings(home=home, onnx_threads=1)
    engine = open_engine(settings, reconcile=False)
    try:
        featurizer, extractor, head = engine.featurizer, engine.extractor, engine.head
        inputs = [featurizer.prepare(image) for image in images]
        for x in inputs[:10]:  # warm up
            head(extractor(x[None]))

        def once() -> dict[str, float]:
            timings = {}
            started = time.thread_time()
            features = [extractor(x[None]) for x in inputs]
            timings["backbone"] = time.thread_time() - started
            started = time.thread_time()
            for f in features:
                head(f)
            timings["head"] = time.thread_time() - started
            started = time.thread_time()
            for image in images:
                featurizer.prepare(image)
            timings["decode_prepare"] = time.thread_time() - started
            out = {f"{key}_ms": round(seconds * 1000 / len(images), 3) for key, seconds in timings.items()}
            out["model_ms"] = round(out["backbone_ms"] + out["head_ms"], 3)
            return out

        yield once
    finally:
        engine.close()


def py_spy_profile(pid: int, samples_file: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy")
    if spy is None:
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--threads",
                             "--output", str(samples_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stages_of(samples_file: Path) -> dict[str, float]:
    """Share of busy samples per stage (``STAGES``), from py-spy's collapsed stacks."""
    counts: collections.Counter[str] = collections.Counter()
    patterns = [(stage, re.compile(pattern)) for stage, pattern in STAGES]
    for line in samples_file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        stage = "other"
        for frame in reversed(frames):
            found = next((name for name, pattern in patterns if pattern.search(frame)), None)
            if found:
                stage = found
                break
        counts[stage] += int(count)
    total = sum(counts.values()) or 1
    return {stage: round(n / total, 3) for stage, n in counts.most_common()}


def top_frames(samples_file: Path, n: int = 40) -> list[tuple[str, float]]:
    """The functions present in the most busy samples (inclusive), for reading the profile by hand."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in samples_file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(count)
    return [(frame, round(c / max(total, 1), 3)) for frame, c in inclusive.most_common(n)]


def cpu_per_search(pid: int, client: Client, bodies: list[tuple[bytes, str]], path: str) -> float:
    """The server's CPU ms per search (all its threads, from ``/proc``) over these requests, sent one at a time."""
    before = sum(thread_cpu(pid).values())
    for body in bodies:
        client.post(*body, path=path)
    return round((sum(thread_cpu(pid).values()) - before) * 1000 / len(bodies), 3)


def measure(home: Path, requests: int, raw: bool, spy: bool, keep_samples: Path | None = None, rounds: int = 5
            ) -> dict[str, Any]:
    images = query_jpegs(requests)
    bodies = [(image, "image/jpeg") if raw else multipart(image, {"k": "5"}) for image in images]
    path = "/api/search?k=5" if raw else "/api/search"
    result: dict[str, Any] = {}
    with (server_process(home, workers="1") as (base, server), server_process(home, program=FLOOR, workers="1") as (
            floor_base, floor), bare_model(home, images[:100]) as model, tempfile.TemporaryDirectory() as scratch):
        client, floor_client = Client(base), Client(floor_base)
        for body in bodies[:20]:
            client.post(*body, path=path)
            floor_client.post(*body, path=path)
        names = thread_names(server.pid)
        stages_before = stage_seconds(client)
        before, started = thread_cpu(server.pid), time.perf_counter()
        took = [client.post(*body, path=path)["took_ms"] for body in bodies]
        after, elapsed = thread_cpu(server.pid), time.perf_counter() - started
        stages_after = stage_seconds(client)
        per_thread: collections.Counter[str] = collections.Counter()
        for tid, seconds in after.items():
            per_thread[group(names.get(tid))] += seconds - before.get(tid, 0.0)
        total = sum(per_thread.values())
        result["server"] = {
            "requests": requests, "body": "raw image" if raw else "multipart",
            "cpu_ms_per_search": round(total * 1000 / requests, 3),
            "round_trip_ms_mean": round(elapsed * 1000 / requests, 2),
            "took_ms_median": round(float(np.median(took)), 2),
            "by_thread_ms": {name: round(s * 1000 / requests, 3) for name, s in per_thread.most_common()},
            "stage_ms": {name: round((seconds - stages_before.get(name, 0.0)) * 1000 / requests, 3)
                         for name, seconds in stages_after.items()},
        }
        # then the same uploads again, in rounds: the server (its candidates' records and colours now in memory, as
        # in a server that has run a while), the floor server and the bare model one after the other, so that the
        # host's changes of speed (a fifth and more within minutes) fall on all three alike
        result["rounds"] = []
        for _ in range(rounds):
            row: dict[str, float] = {"server_ms": cpu_per_search(server.pid, client, bodies, path),
                                     "floor_ms": cpu_per_search(floor.pid, floor_client, bodies, path), **model()}
            row["server_to_model"] = round(row["server_ms"] / row["model_ms"], 3)
            row["floor_to_model"] = round(row["floor_ms"] / row["model_ms"], 3)
            result["rounds"].append(row)
            print(json.dumps(row), flush=True)
        result["median"] = {key: round(float(np.median([row[key] for row in result["rounds"]])), 3)
                            for key in result["rounds"][0]}
        samples = Path(scratch) / "samples.txt"
        spying = py_spy_profile(server.pid, samples) if spy else None
        if spying:  # a pass of its own: sampling slows the server, so it is not in the timed ones
            time.sleep(1.0)
            for body in bodies:
                client.post(*body, path=path)
            spying.send_signal(2)  # SIGINT: py-spy writes its file
            spying.wait(60)
            if samples.exists():
                if keep_samples:
                    shutil.copy(samples, keep_samples)
                result["stages"] = stages_of(samples)
                result["top_frames"] = top_frames(samples)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="an ingested home (the demo's)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--raw", action="store_true", help="send the image as the request body, not multipart")
    parser.add_argument("--py-spy", action="store_true", help="also sample the server with py-spy")
    parser.add_argument("--samples", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of server, floor server and bare model in turn")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "search_cost.json")
    args = parser.parse_args()
    result = measure(args.home, args.requests, args.raw, args.py_spy, args.samples, args.rounds)
    write_results(args.out, **result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
