"""History at 100k records of about 2 KB: insert vs insert at 100, first page, search."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from bench.common import Result, percentile, sample, timed
from core.history.query import parse_query
from core.history.store import History

WORDS = (
    "the movie was great terrible acting plot boring wonderful review film story actor scene music bad "
    "good fine awful superb dull moving slow quick bright dark funny sad"
).split()
BIG = 100_000
INSERTS = 200


def record(rng: random.Random, i: int) -> dict:
    """About 2 KB stored: a prompt, an output, params and stats like a real generation."""
    return {
        "kind": "generation",
        "status": "done",
        "model": "demo",
        "adapter": None,
        "mode": "raw",
        "system": "",
        "prompt": " ".join(rng.choice(WORDS) for _ in range(90)) + f" item{i}",
        "output": " ".join(rng.choice(WORDS) for _ in range(170)),
        "params": {"max_new_tokens": 128, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "seed": 0, "stop": []},
        "rendered_prompt": None,
        "prompt_tokens": 120,
        "completion_tokens": 64,
        "stop_reason": "eos",
        "latency_s": 0.2,
        "ttft_s": 0.01,
        "tok_per_s": 320.0,
    }


def insert_times(history: History, rng: random.Random, n: int) -> list[float]:
    out = []
    for i in range(n):
        rec = record(rng, i)
        began = time.perf_counter()
        history.add(rec)
        out.append(time.perf_counter() - began)
    return out


def run() -> list[Result]:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        small = History(Path(tmp) / "small")
        small.add_many(record(rng, i) for i in range(100))
        base = insert_times(small, rng, INSERTS)
        big_root = Path(tmp) / "big"
        big = History(big_root)
        for start in range(0, BIG, 5000):
            big.add_many(record(rng, i) for i in range(start, start + 5000))
        at_big = insert_times(big, rng, INSERTS)
        first_page = timed(lambda: History(big_root).search(limit=100), repeats=7)
        rare = timed(lambda: History(big_root).search(parse_query("item54321"), limit=100), repeats=7)
        nothing = timed(lambda: History(big_root).search(parse_query("zebra"), limit=100), repeats=7)
        filtered = timed(lambda: History(big_root).search(parse_query("tag:none is:starred"), limit=100), repeats=7)
        size_mb = sum(f.stat().st_size for f in (big_root / "history").iterdir()) / 1e6
    b, g = sample(base), sample(at_big)
    p99_base, p99_big = percentile(base, 0.99), percentile(at_big, 0.99)
    search = max(rare.median, nothing.median, filtered.median)
    return [
        Result(
            "history insert at 100k (median)",
            g.median * 1e3,
            b.median * 1e3,
            "ms",
            "<= 2x insert at 100",
            g.median <= 2 * b.median,
            g.spread("ms", 1e3),
            f"{INSERTS} inserts each; store {size_mb:.0f} MB",
        ),
        Result(
            "history insert at 100k (p99)",
            p99_big * 1e3,
            p99_base * 1e3,
            "ms",
            "<= 50 ms, <= 2x",
            p99_big <= 0.05 and p99_big <= 2 * p99_base,
        ),
        Result(
            "history first page at 100k",
            first_page.median * 1e3,
            None,
            "ms",
            "<= 200 ms",
            first_page.median <= 0.2,
            first_page.spread("ms", 1e3),
            "a fresh History, 100 rows",
        ),
        Result(
            "history search at 100k (worst of 3)",
            search * 1e3,
            None,
            "ms",
            "<= 500 ms",
            search <= 0.5,
            f"rare word {rare.median * 1e3:.0f} / no hit {nothing.median * 1e3:.0f} / "
            f"filters {filtered.median * 1e3:.0f} ms",
            "full scans: nothing stops them early",
        ),
    ]
