"""The headless CLI: run as a user runs it (a subprocess with its own exit code and streams) where the process
is what a test checks, and in this process (`here`, torch loaded once) where it is what a command does."""

import json

import pytest

from core import __version__
from tests.conftest import here, tunelab


def test_version(home):
    out = tunelab("--version", home=home)
    assert out.returncode == 0 and out.stdout.strip() == f"tunelab {__version__}"


@pytest.mark.slow
def test_gen_streams_to_stdout_and_saves_history(home):
    out = tunelab("gen", "Tell me a short story.", "--max-new-tokens", "30", "--json", home=home)
    assert out.returncode == 0, out.stderr
    text, record_line = out.stdout.rsplit("\n", 2)[0], out.stdout.strip().splitlines()[-1]
    record = json.loads(record_line)
    assert record["output"] and record["output"] in text
    assert record["completion_tokens"] > 0 and record["params"]["max_new_tokens"] == 30
    assert "tok/s" in out.stderr and "Traceback" not in out.stderr
    listed = tunelab("history", "--json", home=home)
    assert json.loads(listed.stdout.strip().splitlines()[0])["id"] == record["id"]
    shown = tunelab("history", "show", record["id"], home=home)
    assert json.loads(shown.stdout)["rendered_prompt"].startswith("<|user|>")


@pytest.mark.slow
def test_gen_reads_stdin_and_respects_stop(home):
    out = tunelab("gen", "-", "--raw", "--stop", ".", "--no-history", home=home, stdin="Anna was a")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and "." not in out.stdout
    assert tunelab("history", home=home).stdout == ""


@pytest.mark.parametrize(
    "args,message",
    [
        (("gen", "hi", "--model", "/no/such/model"), "model folder not found: /no/such/model"),
        (("gen", "hi", "--model", "tunelab-test/absent"), "cannot load model hub id 'tunelab-test/absent'"),
        (("gen", "hi", "--top-p", "3"), "top_p must be in (0, 1]"),
        (("gen", "hi", "--max-new-tokens", "0"), "max_new_tokens must be between"),
        (("history", "show", "nope"), "'nope' is not a history record id"),
        (("history", "show", "abcdef12"), "no history record with id abcdef12"),
        (("history", "kind:banana"), "kind:banana is not a record kind"),
        (("history", "since:yesterday"), "since:yesterday is not a date"),
        (("history", "import", "/no/such.jsonl"), "/no/such.jsonl: no such file"),
        (("history", "export", "--format", "xml"), "export format must be jsonl, csv, training"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(home, args, message):
    out = tunelab(*args, home=home)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines == [f"tunelab: error: {lines[0].removeprefix('tunelab: error: ')}"]
    assert message in lines[0]


def test_pickle_only_model_is_refused(home, model_copy):
    (model_copy / "model.safetensors").rename(model_copy / "pytorch_model.bin")
    out = tunelab("gen", "hi", "--model", str(model_copy), home=home)
    assert out.returncode == 2 and "--allow-pickle" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_eval_prompts_diff_baseline_and_min_pass(home, tmp_path, capsys):
    first, second = tmp_path / "senti.toml", tmp_path / "senti2.toml"
    first.write_text('mode = "raw"\ntemplate = "Review: {{text}}\\nSentiment:"\n[params]\nmax_new_tokens = 3\n')
    second.write_text(
        'name = "senti"\nmode = "raw"\ntemplate = "{{text}} Overall, this review is"\n[params]\nmax_new_tokens = 3\n'
    )
    out = here(capsys, "eval", "--no-prompt", "--prompt", str(first), "--limit", "40", "--pin")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "demo:eval · 40 items · grader labels" in lines[0]
    assert lines[2].split()[:5] == ["0", "no", "prompt", "|", "demo"]
    out = here(
        capsys, "eval", "--prompt", str(second), "--model", "demo", "--model", "demo", "--limit", "40",
        "--min-pass", "99%", "--json",
    )  # fmt: skip
    assert out.returncode == 1 and "min-pass failed" in out.stderr
    result = json.loads(out.stdout)
    assert len(result["variants"]) == 2 and result["variants"][0]["pass_rate"] > 0.5
    assert result["variants"][1]["cached"] == 40  # the same call twice is computed once
    assert len(result["comparisons"][0]["fixed"]) == result["variants"][0]["passed"]
    diff = here(capsys, "prompts", "diff", "senti@1", "senti@2")
    assert "-Review: {{text}}" in diff.stdout and "+{{text}} Overall, this review is" in diff.stdout
    shown = here(capsys, "evals", "show", result["id"])
    assert "fixed" in shown.stdout and shown.returncode == 0
    assert here(capsys, "eval", "--prompt", "nope@9").returncode == 2


@pytest.mark.slow
def test_eval_reports_each_variants_pass_rate_and_items_to_tensorboard(home, tmp_path, capsys):
    from tests.unit.test_trackers import tensorboard_events

    prompt = tmp_path / "senti.toml"
    prompt.write_text('mode = "raw"\ntemplate = "Review: {{text}}\\nSentiment:"\n[params]\nmax_new_tokens = 3\n')
    words = ["eval", "--no-prompt", "--prompt", str(prompt), "--limit", "6", "--json", "--report-to", "tensorboard"]
    out = here(capsys, *words, "--report-dir", str(tmp_path / "tb"))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)  # stdout is still the JSON alone
    scalars, texts = tensorboard_events(tmp_path / "tb" / summary["id"])
    assert f"report: TensorBoard event files in {tmp_path / 'tb' / summary['id']}" in out.stderr
    for v in summary["variants"]:
        assert scalars[f"pass_rate/{v['label']}"] == [(0, pytest.approx(v["pass_rate"]))]
        assert scalars[f"ci_low/{v['label']}"] == [(0, pytest.approx(v["ci"][0]))]
        assert scalars[f"ci_high/{v['label']}"] == [(0, pytest.approx(v["ci"][1]))]
    items = texts["items"].splitlines()
    assert items[0] == "| variant | item | passed | pass share | expected | output |" and len(items) == 2 + 2 * 6
    assert "| scope | demo:eval |" in texts["config"] and "| limit | 6 |" in texts["config"]
    out = here(capsys, "eval", "--no-prompt", "--limit", "2", "--report-to", "tensorboard")
    eval_id = out.stdout.split()[1]  # `eval ID · ...`: without --report-dir, the eval's own folder
    assert scalars and tensorboard_events(home / "evals" / eval_id / "tensorboard")[0]


def test_eval_of_a_promptfoo_csv_grades_each_rows_checks_on_every_row(tmp_path, capsys):
    prompt, tests = tmp_path / "senti.toml", tmp_path / "tests.csv"
    prompt.write_text('name = "senti"\nmode = "raw"\ntemplate = "{{text}} Overall, this review is"\n')
    tests.write_text(
        "text,__expected,__description\n"
        "We ordered the desk two days ago. The design is really excellent and excellent. I love it.,positive,bare\n"
        "I picked this notebook for my trip. I think the delivery feels terrible. I would not buy it again.,"
        "icontains: NEG,a check\n",
        encoding="utf-8",
    )
    out = here(capsys, "eval", "--prompt", str(prompt), "--dataset", str(tests))
    assert out.returncode == 0, out.stderr
    assert "tests.csv:all · 2 items · grader each row's __expected" in out.stdout.splitlines()[0]
    assert " 100.0% " in out.stdout.splitlines()[2]  # the bare value equals the output, the check finds neg


@pytest.mark.slow
def test_train_runs_stop_and_a_changed_resume_is_refused(home):
    import time

    from core.training.runs import Runs

    out = tunelab("train", "--max-steps", "300", "--batch-size", "8", "--detach", home=home)
    assert out.returncode == 0 and "started training run" in out.stderr
    run_id = out.stderr.split("started training run ")[1].split()[0]
    runs, deadline = Runs(home), time.monotonic() + 120
    while (status := runs.status(run_id)).state != "running" or not status.step:  # the poll: not the CLI
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    stopped = tunelab("runs", "stop", run_id, home=home)
    assert stopped.returncode == 0 and "stopped, saved step-" in stopped.stderr
    refused = tunelab(
        "train", "--resume", run_id, "--max-steps", "300", "--batch-size", "8", "--lora-r", "8", home=home
    )
    assert refused.returncode == 2 and "lora_r: 16 -> 8" in refused.stderr and "Traceback" not in refused.stderr
    listed = tunelab("runs", home=home).stdout
    assert run_id in listed and "stopped" in listed


def test_a_flag_is_never_taken_as_the_abbreviation_of_another(capsys):
    from tui.cli.main import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["gen", "--mode", "chat", "hi"])  # gen has --chat/--raw; --mode is no --model
    assert exit_.value.code == 2 and "unrecognized arguments: --mode" in capsys.readouterr().err


def test_optimize_searches_saves_the_best_and_says_how_to_get_the_clean_answer(home, tmp_path, capsys):
    prompt = tmp_path / "senti.toml"
    prompt.write_text('name = "senti"\nmode = "raw"\ntemplate = "{{text}} Overall, this review is"\n')
    done = here(
        capsys, "optimize", "--prompt", str(prompt), "--dataset", "demo", "--limit", "16", "--budget", "120", "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["candidates"] >= 10 and result["calls"] <= 140 and result["tried"] >= result["candidates"]
    assert {row["kind"] for row in result["table"]} >= {"start", "shots", "instructions"}
    shown = here(capsys, "optimize", "--prompt", str(prompt), "--dataset", "demo", "--limit", "16", "--budget", "120")
    assert "the dataset has no sealed test split: the clean answer needs one (tunelab compare --final" in shown.stdout
    assert "start: senti@" in shown.stdout and "best:  senti@" in shown.stdout
    refused = here(capsys, "optimize", "--prompt", str(prompt), "--strategies", "reflect")
    assert refused.returncode == 2 and "reflect needs a --proposer" in refused.stderr
    # the search saved its best as `senti`; --resume goes on from the start it kept, the scored items cached
    resumed = json.loads(here(capsys, "optimize", "--resume", "--json").stdout)
    assert resumed["start"] == result["start"] and resumed["best"] == result["best"]
    assert result["generated"] == result["calls"] == resumed["calls"] and resumed["generated"] == 0
