"""No input is unbounded: a 5 MB prompt or row is refused in one line (gen) or cut to fit (eval, training),
in seconds and within 2 GB, and only a window of it is ever tokenized."""

import json
import subprocess
import sys

import pytest

from core.engine.loading import load
from core.engine.prompt import encode, fit
from core.errors import TunelabError
from tests.conftest import REPO, subprocess_env, tunelab

pytestmark = pytest.mark.slow
HUGE = "the film was great and " * 230_000  # about 5 MB


@pytest.fixture(scope="module")
def llama(tiny_models):
    return load(str(tiny_models["llama2"]))  # a tokenizer that adds BOS


def test_fit_keeps_the_end_or_the_start_and_bos_once(llama):
    tok = llama.tokenizer
    whole = encode(tok, "abcdefghij")
    assert fit(tok, "abcdefghij", 100) == (whole, False)
    left, cut = fit(tok, "abcdefghij", 5, side="left")
    assert cut and left == [tok.bos_token_id, *whole[-4:]]
    right, _ = fit(tok, "abcdefghij", 5, side="right")
    assert right == whole[:5] and right.count(tok.bos_token_id) == 1
    with pytest.raises(TunelabError, match="the prompt is over 5 tokens \\(10 characters\\)"):
        fit(tok, "abcdefghij", 5, side=None)


def test_a_huge_prompt_is_cut_from_a_window_of_text(llama):
    tok = llama.tokenizer
    calls = []
    real = tok.__call__

    class Spy:
        def __getattr__(self, name):
            return getattr(tok, name)

        def __call__(self, text, **kwargs):
            calls.append(len(text))
            return real(text, **kwargs)

    ids, cut = fit(Spy(), HUGE, 200, side="left")
    assert cut and len(ids) == 200 and max(calls) <= 200 * 64


def test_gen_refuses_a_5_mb_prompt_in_one_line(home):
    done = tunelab("gen", "-", "--raw", home=home, stdin=HUGE)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "the prompt is over" in done.stderr


def test_eval_cuts_a_5_mb_row_and_says_so_within_2_gb(tmp_path, home):
    rows = [{"text": "great fun", "label": "positive"}, {"text": HUGE, "label": "negative"}]
    data = tmp_path / "cases.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = (
        "import json, resource, sys\n"
        "from core.engine.options import ModelOptions\n"
        "from core.engine.engines import HostEngine\n"
        "from core.evals.plan import EvalRequest, Variant\nfrom core.evals.runner import run_eval\n"
        f"s = run_eval(sys.argv[1], EvalRequest({str(data)!r}, grader='labels'), [Variant('no prompt', None)],"
        " HostEngine(ModelOptions('demo')))\n"
        "print(json.dumps({'truncated': s.variants[0].truncated, 'trials': s.variants[0].trials,"
        " 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(home)],
        cwd=REPO,
        env=subprocess_env(TUNELAB_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["trials"] == 2 and report["truncated"] == 1 and report["rss_mb"] < 2048


def test_a_5_mb_training_row_becomes_a_bounded_example(llama):
    from core.data.datasets import Item
    from core.training.config import TrainConfig
    from core.training.data import encode as training_example

    for mode in ("raw", "chat"):
        example = training_example(
            llama, TrainConfig(mode=mode, max_seq_len=64), None, Item("x", {"text": HUGE}, HUGE, "x:1")
        )
        assert len(example.ids) == len(example.labels) == 64
        assert sum(label != -100 for label in example.labels) == 32  # half the room still teaches the answer


def test_eval_can_cut_the_end_or_skip_an_over_long_item(tmp_path, home):
    from core.engine.engines import HostEngine
    from core.engine.options import ModelOptions
    from core.evals.plan import EvalRequest, Variant
    from core.evals.runner import run_eval

    rows = [{"text": "great fun", "label": "positive"}, {"text": "dull " * 2000, "label": "negative"}]
    data = tmp_path / "cases.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    backend = HostEngine(ModelOptions("demo"))
    for truncate, trials, cut, skipped in (("right", 2, 1, 0), ("skip", 1, 0, 1)):
        request = EvalRequest(str(data), grader="labels", truncate=truncate)
        (cell,) = run_eval(home, request, [Variant("no prompt", None)], backend).variants
        assert (cell.trials, cell.truncated, cell.skipped) == (trials, cut, skipped), truncate
