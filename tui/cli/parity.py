"""`tunelab compare --parity`: one model here and served, item by item."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from core.errors import TunelabError
from tui.cli.options import model_options
from tui.cli.options import workbench as _workbench
from tui.cli.output import progress

if TYPE_CHECKING:
    from core.evals.plan import EvalRequest


def run_parity_check(args: argparse.Namespace, request: EvalRequest) -> int:
    """`compare --parity`: the table of differing items (or JSON), exit 1 when any differ."""
    from core.engine.engines import HostEngine
    from core.workbench.parity import run_parity

    options, models, adapters = model_options(args, several_models=True)
    if adapters:
        raise TunelabError("{0} compares base models: a served model's LoRAs are the server's", "parity")
    workbench = _workbench()
    refs = [workbench.prompt_ref(ref) for ref in args.prompt]
    with progress("parity") as update:
        found = run_parity(workbench, request, models, refs, HostEngine(options), update)
    if args.json:
        drifts = [vars(d) for d in found.drifts]
        print(
            json.dumps(
                {
                    "eval": found.summary.id,
                    "compared": found.compared,
                    "differing": found.differing,
                    "drifts": drifts,
                }
            )
        )
    else:
        for d in found.drifts:
            print(f"{d.item} ({d.prompt}): here {d.local[:60]!r} · served {d.served[:60]!r}: {d.why}")
        more = (
            f" ({found.differing - len(found.drifts)} more not listed)" if found.differing > len(found.drifts) else ""
        )
        print(f"parity: {found.differing} of {found.compared} answers differ{more} (eval {found.summary.id})")
    return 1 if found.differing else 0
