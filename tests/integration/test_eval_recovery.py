"""An eval whose process dies mid-run (kill -9 of the TUI or the CLI) is not lost: its folder is summarized as
interrupted with what finished, listed, in history, and resumable to completion."""

import subprocess
import sys

from core.evals.recovery import recover_evals
from core.evals.stored import EvalRuns
from core.history.query import parse_query
from core.history.store import History
from core.workbench.service import Workbench
from tests.conftest import REPO, subprocess_env, tunelab
from tests.unit.test_evals import ScriptedBackend

DIES_MID_EVAL = """
import os, sys
from pathlib import Path
from core.data.prompts import PromptStore, PromptVersion
from core.evals.plan import EvalRequest, Variant
from core.evals.runner import run_eval

from core.engine.engines import LocalEngine
from core.engine.protocol import GenResult

class Dies(LocalEngine):
    '''Grades the first three items of a group, then the process is killed as kill -9 would.'''
    def batch(self, model, adapter, prompts, params, on_result, cancel):
        for i in range(3):
            on_result(i, GenResult(" positive", "eos", 1, 0.01, extra={"prompt_tokens": 5}))
        os._exit(9)

senti = PromptVersion("{{text}} Overall, this review is", mode="raw")
PromptStore(Path(sys.argv[1])).save("senti", senti)  # as the workbench does when an eval starts
variants = [Variant("no prompt", None), Variant("senti", senti)]
run_eval(Path(sys.argv[1]), EvalRequest("demo", "eval", "labels", limit=10), variants, Dies())
"""


def test_an_eval_killed_mid_run_is_recovered_as_interrupted_and_resumes(home):
    died = subprocess.run(
        [sys.executable, "-c", DIES_MID_EVAL, str(home)], cwd=REPO, env=subprocess_env(), capture_output=True
    )
    assert died.returncode == 9
    (folder,) = (home / "evals").iterdir()
    assert not (folder / "summary.json").exists() and EvalRuns(home).list() == []

    listed = tunelab("evals", "list", home=home)  # any command that lists evals recovers first
    assert listed.returncode == 0 and folder.name in listed.stdout and "interrupted" in listed.stdout
    assert recover_evals(home) == []  # once
    summary = EvalRuns(home).load(folder.name)
    assert summary.status == "interrupted" and "recovered" in summary.error
    assert [v.trials for v in summary.variants] == [3, 0] and summary.n_items == 10
    assert History(home).search(parse_query("kind:eval")).rows[0]["ref"] == folder.name

    done = Workbench(home).resume_eval(folder.name, ScriptedBackend())
    assert done.status == "done" and [v.trials for v in done.variants] == [10, 10]


def test_an_eval_still_being_written_is_left_alone(home, tmp_path):
    from core.evals.stored import PLAN_FILE, WRITER_LOCK

    folder = home / "evals" / "e-live"
    folder.mkdir(parents=True)
    (folder / PLAN_FILE).write_text("{}")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import fcntl,os,time; fd=os.open({str(folder / WRITER_LOCK)!r}, os.O_RDWR|os.O_CREAT);"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert recover_evals(home) == [] and not (folder / "summary.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert recover_evals(home) == []  # its plan is not one: left as it is, never overwritten
    assert (folder / PLAN_FILE).read_text() == "{}"
