"""Run the benchmarks, print the table, write `bench/results/latest.json` and `latest.md`."""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import date
from pathlib import Path

from bench.common import quiet_logs

MEASURES = ("startup", "generation", "training", "history_scale", "worker_memory", "first_answer")
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "cpu",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def markdown(results: list[dict], growth: list[dict], when: str, where: str, total: float) -> str:
    lines = [
        f"Measured {when} on {where}; the run took {total:.0f} s.",
        "",
        "| measure | tunelab | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        base = f"{r['baseline']:.4g} {r['unit']}" if r["baseline"] is not None else "-"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[r["ok"]]
        lines.append(f"| {r['measure']} | {r['value']:.4g} {r['unit']} | {base} | {ratio} | {r['target']} | {met} |")
    if growth:
        lines += [
            "",
            "| model | params | gen ms/token (prompt 32 / 256) | LoRA step s, batch 4 (seq 64 / 256) |",
            "|---|---|---|---|",
        ]
        for g in growth:
            lines.append(
                f"| {g['model']} | {g['params_m']}M | {g['gen_ms_per_token_prompt32']} / "
                f"{g['gen_ms_per_token_prompt256']} | {g['train_step_s_seq64']} / {g['train_step_s_seq256']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    quiet_logs()
    wanted = argv or [*MEASURES, "cost_growth"]
    began = time.monotonic()
    results, growth, failures = [], [], []
    for name in wanted:
        t0 = time.monotonic()
        print(f"bench: {name}…", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            if name == "cost_growth":
                growth = module.run()
            else:
                results += [r.to_dict() for r in module.run()]
        except Exception as exc:
            traceback.print_exc()
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
        print(f"bench: {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    total = time.monotonic() - began
    when, where = date.today().isoformat(), machine()
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "date": when,
        "machine": where,
        "total_s": round(total, 1),
        "results": results,
        "cost_growth": growth,
        "failures": failures,
    }
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    table = markdown(results, growth, when, where, total)
    (RESULTS / "latest.md").write_text(table)
    print(table)
    missed = [r["measure"] for r in results if r["ok"] is False]
    print(
        f"{len(results) - len(missed)}/{len(results)} targets met"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )
    for failure in failures:
        print(f"bench: FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
