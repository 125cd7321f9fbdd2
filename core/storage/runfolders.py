"""Training run folders and adapters as files: their names, the id-prefix lookup and adapter resolution,
below evals and training alike (an eval reads an adapter; it never needs the training engine for that)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.errors import TunelabError
from core.storage.atomic import write_atomic

CONFIG_FILE, METRICS_FILE, STATUS_FILE, LOG_FILE = "run_config.json", "metrics.jsonl", "status.json", "worker.log"
STOP_FILE, CANCEL_FILE, CHECKPOINTS, ADAPTER = "STOP", "CANCEL", "checkpoints", "adapter"
ADAPTER_CONFIG = "adapter_config.json"  # what makes a folder a PEFT adapter
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
CHECKPOINT = re.compile(r"^step-[0-9]{6,}$")
BEST = "best"  # RUN@best: the run's checkpoint with the highest pass rate (train with eval_items)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file another process writes; anything else (missing, torn, `[1, 2]`) is None."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def run_folders(root: Path) -> list[Path]:
    """The run folders under the data dir; a link planted among them is not one (a run would be written
    through it)."""
    folder = Path(root) / "runs"
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]


def run_folder(root: Path, run_id: str) -> Path:
    """The folder of the run whose id starts with `run_id` (one, or a one-line error)."""
    matches = [p for p in run_folders(root) if p.name.startswith(run_id)] if run_id else []
    if len(matches) != 1:
        raise TunelabError(f"no training run '{run_id}'" if not matches else f"run id '{run_id}' is ambiguous")
    return matches[0]


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def run_dir_of(adapter: Path) -> Path | None:
    """The run folder an adapter belongs to (its final `adapter/` or one of its checkpoints), else None."""
    if adapter.name == ADAPTER:
        return adapter.parent
    if adapter.parent.name == CHECKPOINTS and CHECKPOINT.match(adapter.name):
        return adapter.parent.parent
    return None


def scores(run_dir: Path) -> list[dict[str, Any]]:
    """The run's scored steps from metrics.jsonl (`step`, `pass_rate`, `eval_loss`); torn lines skipped."""
    from core.storage.schemas import MetricRow, checked

    try:
        lines = (run_dir / METRICS_FILE).read_bytes().splitlines()
    except OSError:
        return []
    out: dict[int, dict[str, Any]] = {}
    for line in lines:
        try:
            row = checked(MetricRow, json.loads(line))
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if row is not None and row.get("pass_rate") is not None:
            out[row["step"]] = {"step": row["step"], "pass_rate": row["pass_rate"], "eval_loss": row.get("eval_loss")}
    return [out[k] for k in sorted(out)]


def best_of(scored: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest pass rate; a tie goes to the lower eval loss, then the earlier step."""
    return min(
        scored,
        key=lambda s: (-s["pass_rate"], math.inf if s["eval_loss"] is None else s["eval_loss"], s["step"]),
        default=None,
    )


def best_checkpoint(run_dir: Path) -> Path | None:
    """The scored checkpoint of the run that `best_of` picks among those still on disk."""
    folder = run_dir / CHECKPOINTS
    kept = [s for s in scores(run_dir) if (folder / checkpoint_name(s["step"]) / ADAPTER_CONFIG).is_file()]
    best = best_of(kept)
    return None if best is None else folder / checkpoint_name(best["step"])


def _run_adapter(run_dir: Path, ref: str, which: str) -> Path:
    if not which:
        path = run_dir / ADAPTER
        if not path.is_dir():
            raise TunelabError(f"training run {ref} has no adapter yet (it is saved when the run finishes)")
        return path
    if which == BEST:
        best = best_checkpoint(run_dir)
        if best is None:
            raise TunelabError(
                f"training run {ref.partition('@')[0]} scored no checkpoint (train it with {{0}})", "eval_items"
            )
        return best
    path = run_dir / CHECKPOINTS / which
    if not CHECKPOINT.match(which) or not path.is_dir():
        raise TunelabError(
            f"training run {ref.partition('@')[0]} has no checkpoint '{which}' (RUN@step-000040 or RUN@best)"
        )
    return path


def resolve_adapter(root: Path, ref: str) -> Path:
    """A folder with `adapter_config.json`, or an adapter of the training run `ref`: `RUN` (id prefix) its
    final adapter, `RUN@step-000040` that checkpoint, `RUN@best` its best-scored checkpoint."""
    path = Path(ref).expanduser()
    if not path.is_dir():
        run_id, _, which = ref.partition("@")
        try:
            run_dir = run_folder(root, run_id)
        except TunelabError:
            raise TunelabError(f"no adapter '{ref}': not a folder and not a training run id") from None
        path = _run_adapter(run_dir, ref, which)
    if not (path / ADAPTER_CONFIG).is_file():
        raise TunelabError(f"not a PEFT adapter folder (no adapter_config.json): {path}")
    if not any((path / name).is_file() for name in WEIGHTS):
        raise TunelabError(f"adapter has no weights ({' or '.join(WEIGHTS)}): {path}")
    return path


def names_local_adapter(root: Path, ref: str) -> bool:
    """Whether `ref` names a folder or a training run here (else it may be an adapter a server lists)."""
    run_id = ref.partition("@")[0]
    return Path(ref).expanduser().is_dir() or bool(run_id and any(p.name.startswith(run_id) for p in run_folders(root)))


def concrete_ref(root: Path, ref: str) -> str:
    """`RUN@best` as the checkpoint it names now (`RUN@step-000040`), so a stored eval says which one it
    judged; any other ref as given."""
    run_id, _, which = ref.partition("@")
    if which != BEST or Path(ref).expanduser().is_dir():
        return ref
    return f"{run_id}@{resolve_adapter(root, ref).name}"


LEDGER_FILE = "trained_rows.txt"  # the digests of the rows a run trained on, sorted, one per line
LEDGER_CHARS = 16


def write_ledger(run_dir: Path, digests: Iterable[str]) -> None:
    """What a run trained on, by row content: the seal refuses a final look at rows in it."""
    lines = sorted({d[:LEDGER_CHARS] for d in digests})
    write_atomic(run_dir / LEDGER_FILE, "".join(f"{line}\n" for line in lines))


def read_ledger(run_dir: Path) -> set[str] | None:
    """The run's ledger, or None where it keeps none (a run from before ledgers, a PEFT folder from elsewhere)."""
    try:
        text = (run_dir / LEDGER_FILE).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return {line for line in text.split() if line}
