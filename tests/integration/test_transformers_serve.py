"""A real OpenAI-compatible server in the suite: `transformers serve` on the demo model (127.0.0.1, a free
port, CPU), driven through tunelab's command line: streamed gen, an eval whose greedy answers equal the
in-process ones item by item, a compare with the served model as a row beside a local LoRA, a served
judge, and `esc` mid-stream in the TUI."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from core import demo
from tests.conftest import here, subprocess_env

pytestmark = pytest.mark.slow
READY_S = 90  # about 5 s here; a loaded CI host can take longer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`transformers serve` with the demo model preloaded, in its own session (stopped with its children)."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(demo.MODEL_DIR)]
    command += ["--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--model-timeout", "-1"]
    command += ["--dtype", "float32"]  # as tunelab loads it on CPU: parity compares like with like
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(), start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_S
    try:
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"transformers serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield f"{base}/v1#{demo.MODEL_DIR}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_gen_streams_from_the_server(served, capsys):
    done = here(
        capsys,
        "gen",
        "--model",
        served,
        "--raw",
        "--max-new-tokens",
        "6",
        "Great film. Overall, this review is",
    )
    assert done.returncode == 0, done.stderr
    answer = done.stdout.split()[0].rstrip(".")  # the label, then whatever the model writes after it
    assert answer in {"positive", "negative"}, done.stdout  # the demo model's two answers


def prompt_file(tmp_path) -> str:
    path = tmp_path / "senti.toml"
    path.write_text('template = "{{text}} Overall, this review is"\nmode = "raw"\n[params]\nmax_new_tokens = 4\n')
    return str(path)


def test_eval_on_the_served_model_grades_its_answers_and_caches_them(served, capsys, tmp_path):
    args = [
        "eval",
        "--model",
        served,
        "--prompt",
        prompt_file(tmp_path),
        "--grader",
        "labels",
        "--limit",
        "8",
        "--json",
    ]
    first = here(capsys, *args)
    assert first.returncode == 0, first.stderr
    variant = json.loads(first.stdout)["variants"][0]
    assert variant["model"] == served and variant["trials"] == 8 and variant["pass_rate"] > 0.5
    again = json.loads(here(capsys, *args).stdout)["variants"][0]
    assert again["cached"] == 8 and again["pass_rate"] == variant["pass_rate"]  # greedy: cached by URL and model


def test_parity_finds_served_and_in_process_greedy_answers_equal_item_by_item(served, capsys, tmp_path):
    args = ["--model", "demo", "--model", served, "--prompt", prompt_file(tmp_path), "--limit", "24", "--json"]
    done = here(capsys, "compare", "--parity", *args)
    found = json.loads(done.stdout)
    assert found["compared"] == 48 and found["drifts"] == [] and done.returncode == 0, (found, done.stderr)


def test_parity_names_each_item_that_differs_and_why(capsys, tmp_path):
    """The same check against a server that answers otherwise (the fake's fixed reply): every item is listed."""
    from tests.served_fakes import serve

    made, url = serve()
    try:
        done = here(capsys, "compare", "--parity", "--model", "demo", "--model", f"{url}#ok", "--limit", "5")
    finally:
        made.shutdown()
    assert done.returncode == 1, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 6 and lines[-1].startswith("parity: 5 of 5 answers differ")
    assert "served 'It is sunny.'" in lines[0] and "(no prompt)" in lines[0]


def test_a_served_model_is_a_row_beside_a_local_lora_in_compare(served, capsys, tmp_path):
    from tests.contract.test_worker_protocol import make_adapter

    run_id = make_adapter(tmp_path / "lora")
    done = here(capsys, "compare", "--model", "demo", "--model", served, "--adapter", run_id, "--prompt", prompt_file(tmp_path), "--no-prompt", "--grader", "labels", "--limit", "12", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    judged = json.loads(done.stdout)
    variants = judged["variants"]
    assert ("demo", run_id) in {(v["model"], v["adapter"]) for v in variants}
    assert all(v["adapter"] is None for v in variants if v["model"] == served)  # the server loads no LoRA
    assert any(v["model"] == served and v["pass_rate"] > 0.5 and v["mean_completion_tokens"] for v in variants)
    assert judged["grid"]["cells"] and "verdict" in judged  # a row of the verdict, beside the local ones


def test_a_served_judge_grades_through_the_real_server(served, capsys, tmp_path):
    """The demo model is no grader: its answers carry no PASS/FAIL/SCORE line, so every one is a counted
    judge error and a fail, never a pass; the calls and their tokens are the judge's own cost."""
    args = ["eval", "--model", "demo", "--no-prompt", "--limit", "3", "--json", "--no-cache"]
    done = here(capsys, *args, "--grader", "judge:Is the review's sentiment right?", "--judge", served)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    judge = summary["judge"]
    assert judge["calls"] == 3 and judge["prompt_tokens"] > 0 and judge["model"] == served
    assert summary["variants"][0]["pass_rate"] <= (3 - judge["errors"]) / 3


async def test_esc_mid_stream_in_the_tui_cancels_the_served_run_and_keeps_what_streamed(served, home, monkeypatch):
    """The TUI on the real server: a run streams, `esc` lands mid-stream (the stream is held after 3 pieces:
    the demo answers a whole story in under a second) and the run is saved cancelled with what streamed."""
    from core.history.store import History
    from tests.fakes import FakeClient
    from tests.tui_helpers import StartedApp, type_prompt, wait_for

    monkeypatch.setenv("TUNELAB_FAULTS", "hold_served_stream_after=3")
    app = StartedApp(served, client_factory=FakeClient, home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        await type_prompt(pilot, "Tell me a short story.")  # the demo's stories run to 60+ tokens
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.main.results.output.text.strip() != "")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.main.generation is None)
        await app.settled()
        shown = app.main.results.output.text
    record = History(home).recent(1)[0]
    assert record["status"] == "cancelled" and record["model"] == served
    assert shown and record["output"] == shown and record["completion_tokens"] == 3  # the pieces before the esc
