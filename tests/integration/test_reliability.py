"""Reliability and security: a kill storm on the history writer, the bad-input corpus through the CLI
(one line, exit 2, no traceback, stored data untouched), property tests for loaders and the renderer,
and safe defaults (private files, no shell, no secrets in files)."""

import hashlib
import json
import multiprocessing
import os
import random
import re
import signal
import stat
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.datasets import load_dataset
from core.data.templates import Template
from core.errors import TunelabError
from core.history import store as history_mod
from core.history.store import History
from tests.conftest import REPO, here, tunelab

BAD = REPO / "tests" / "bad_inputs"


# -- kill storm ---------------------------------------------------------------------------------------


def _storm_writer(home: Path, acked: Path, start: int) -> None:
    """Add records forever; after each add returns, append its id to `acked`."""
    h = History(home)
    fd = os.open(acked, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for i in range(start, start + 10_000):
        rid = h.add({"kind": "generation", "prompt": f"storm {i}", "output": "x" * 300, "tags": ["storm"]})
        os.write(fd, f"{rid}\n".encode())


@pytest.mark.slow
def test_kill_storm_leaves_every_file_readable_and_every_returned_write_stored(home, tmp_path, monkeypatch):
    monkeypatch.setattr(history_mod, "SHARD_SIZE", 7)  # many shard and index rollovers
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(20261123)
    acked = tmp_path / "acked"
    for k in range(200):
        before = acked.stat().st_size if acked.exists() else 0
        writer = ctx.Process(target=_storm_writer, args=(home, acked, k * 10_000))
        writer.start()
        deadline = time.monotonic() + 60  # at least one write returns first, however busy the machine
        while (acked.stat().st_size if acked.exists() else 0) == before and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.03))  # then the kill lands anywhere in a later write
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(10)
        assert writer.exitcode == -signal.SIGKILL
    returned = {line for line in acked.read_text().splitlines() if re.fullmatch(r"[0-9a-f]{22}", line)}
    assert len(returned) >= 200
    folder = home / "history"
    for shard in folder.glob("gen-*.json"):
        json.loads(shard.read_text())  # every store file parses
    h = History(home)
    stored = h.ids()
    assert returned <= stored
    assert h.problems == []
    found, cursor = set(), None
    while True:  # and every stored record is reachable through the index
        page = h.search(limit=500, cursor=cursor)
        found |= {r["id"] for r in page.rows}
        if page.cursor is None:
            break
        cursor = page.cursor
    assert found == stored
    h.add({"kind": "generation", "prompt": "after the storm"})
    assert not list(folder.glob(".*.tmp"))  # what killed writers left behind is swept by the next one


# -- the bad-input corpus through the CLI -------------------------------------------------------------


def _fingerprint(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


CASES = [
    (
        ("eval", "--no-prompt", "--dataset", f"{BAD}/truncated.jsonl", "--split", "all"),
        "truncated.jsonl:2: not valid JSON",
    ),
    (
        ("eval", "--no-prompt", "--dataset", f"{BAD}/wrong_types.jsonl", "--split", "all"),
        "wrong_types.jsonl:1: field 'messages'",
    ),
    (("eval", "--no-prompt", "--dataset", f"{BAD}/not_utf8.jsonl", "--split", "all"), "not_utf8.jsonl:1: not UTF-8"),
    (
        ("eval", "--no-prompt", "--dataset", f"{BAD}/missing_column.csv", "--split", "all"),
        "missing_column.csv:4: missing value",
    ),
    (("eval", "--no-prompt", "--dataset", f"{BAD}/empty.jsonl", "--split", "all"), "empty.jsonl: no rows"),
    (("eval", "--prompt", f"{BAD}/attribute.toml"), "attribute or item access is not allowed"),
    (("eval", "--prompt", f"{BAD}/unbalanced.toml"), "unbalanced '{{'"),
    (("eval", "--prompt", f"{BAD}/unknown_variable.toml"), "template variable '{{review}}' has no value"),
    (("gen", "hi", "--model", f"{BAD}/not_a_model"), "not a model folder (no config.json)"),
    (("gen", "hi", "--model", f"{BAD}/no_such_folder"), "model folder not found"),
    (("gen", "hi", "--temperature", "-1"), "temperature must be 0 (greedy) or between 0.01 and 10"),
    (("gen", "hi", "--top-k", "-5"), "top_k must be 0 (off) or positive"),
    (("gen", "hi", "--max-new-tokens", "1000000000"), "max_new_tokens must be between 1 and 32768"),
    (("train", "--lora-r", "0", "--detach"), "lora_r must be at least 1"),
    (("train", "--target-modules", "q proj", "--detach"), "'q proj' is not a module name"),
    (("train", "--target-modules", "foo_proj", "--detach"), "unknown target module 'foo_proj' (valid: all-linear"),
    (("train", "--load-in-4bit", "--detach"), "--load-in-4bit (QLoRA) needs bitsandbytes and a CUDA GPU"),
    (("train", "--dataset", f"{BAD}/truncated.jsonl", "--detach"), "truncated.jsonl:2: not valid JSON"),
    (("history", "import", f"{BAD}/truncated.jsonl"), "truncated.jsonl:1: field 'id' must be"),
]


@pytest.fixture(scope="module")
def stored_home(tmp_path_factory):
    """A data dir with history already in it: no bad input may change a byte of it."""
    root = tmp_path_factory.mktemp("stored") / "home"
    History(root).add({"kind": "generation", "prompt": "kept", "output": "safe"})
    return root


@pytest.mark.slow
@pytest.mark.parametrize("args,message", CASES, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(stored_home, args, message):
    before = _fingerprint(stored_home)
    out = tunelab(*args, home=stored_home)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("tunelab: error: ") and message in lines[0], out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert _fingerprint(stored_home) == before


def test_bom_and_quoted_newlines_load(tmp_path):
    assert load_dataset(str(BAD / "bom.jsonl")).items[0].vars["text"] == "with a BOM"


@pytest.mark.slow
def test_corrupt_config_and_unwritable_data_dir_from_the_cli(home, tmp_path):
    from core.storage.config import config_path

    config_path().parent.mkdir(parents=True)
    config_path().write_text((BAD / "corrupt_config.toml").read_text())
    listed = tunelab("history", home=home)  # the CLI does not need the config: it just works
    assert listed.returncode == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = tunelab("history", home=blocker / "home")
    assert out.returncode == 2 and out.stderr.startswith("tunelab: error: Not a directory")
    assert len(out.stderr.strip().splitlines()) == 1


# -- property tests: loaders and renderer never fail any other way --------------------------------------

cell = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=3),
)
row = st.dictionaries(
    st.sampled_from(["text", "label", "expected", "input", "instruction", "output", "messages", "split", "id", "x"]),
    cell,
    max_size=5,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.one_of(row, st.text(max_size=30), st.integers()), max_size=6),
    suffix=st.sampled_from([".jsonl", ".csv"]),
    garbage=st.binary(max_size=20),
)
def test_any_dataset_file_loads_or_fails_with_one_line(tmp_path, rows, suffix, garbage):
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        path.write_bytes("\n".join(json.dumps(r) for r in rows).encode() + garbage)
    else:
        header = sorted({k for r in rows if isinstance(r, dict) for k in r}) or ["text"]
        lines = [",".join(header)] + [
            ",".join(json.dumps(r.get(k)) if isinstance(r, dict) else str(r) for k in header) for r in rows
        ]
        path.write_bytes("\n".join(lines).encode() + garbage)
    try:
        data = load_dataset(str(path))
    except TunelabError as exc:
        assert "\n" not in str(exc) and path.name in str(exc)
        return
    assert all(isinstance(v, str) for item in data.items for v in item.vars.values())


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("{}ab _.x[]()\n")), max_size=40),
    values=st.dictionaries(st.sampled_from(["a", "b", "x", "a_b"]), st.text(max_size=10), max_size=4),
)
def test_any_template_renders_or_fails_with_one_line_and_never_evaluates(text, values):
    try:
        template = Template(text)
    except TunelabError as exc:
        assert "\n" not in str(exc)
        return
    try:
        out = template.render(values)
    except TunelabError as exc:
        assert "\n" not in str(exc) and re.search(r"'\{\{\w+\}\}'|\{\{", str(exc))
        return
    for name in template.variables:  # exactly substitution: every {{name}} became its value, nothing else ran
        assert name in values
    expected = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values[m.group(1)], text)
    assert out == expected


# -- security defaults --------------------------------------------------------------------------------


def test_no_shell_anywhere_in_the_code():
    sources = [p for d in ("core", "tui", "bench") for p in (REPO / d).rglob("*.py")]
    offenders = [str(p) for p in sources if re.search(r"shell\s*=\s*True|os\.system\(|os\.popen\(", p.read_text())]
    assert sources and offenders == []


def test_run_folders_and_files_are_private(home):
    from core.training.config import TrainConfig
    from core.training.runs import Runs

    runs = Runs(home)
    run_id = runs.create(TrainConfig(max_steps=1))
    folder = runs.path(run_id)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "runs").stat().st_mode) == 0o700
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name


@pytest.mark.slow
def test_hub_tokens_never_reach_history_or_logs(home, monkeypatch, capsys):
    secret = "hf_tunelabSecretToken0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    out = here(capsys, "gen", "Anna was a", "--max-new-tokens", "4")
    assert out.returncode == 0 and secret not in out.stdout + out.stderr, out.stderr
    assert History(home).recent(1)
    for path in home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
