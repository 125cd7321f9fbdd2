"""Two writers at once, as two terminals do it: nothing lost, nothing duplicated, nobody waits forever."""

import json
import os
import subprocess
import sys

import pytest

from core.history.store import History
from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow


def run_both(script: str, *args: str, home) -> None:
    """`script` in two processes started together; both must succeed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(home), *args],
            cwd=REPO,
            env=subprocess_env(TUNELAB_HOME=str(home)),
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]


def test_two_imports_of_one_file_add_each_record_once(tmp_path, home):
    source = tmp_path / "source"
    History(source).add_many({"kind": "generation", "prompt": f"p{i}", "output": "o"} for i in range(250))
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in History(source).recent(1000)))
    script = (
        "import sys\nfrom pathlib import Path\nfrom core.history.io import import_history\n"
        "from core.history.store import History\nimport_history(History(sys.argv[1]), Path(sys.argv[2]))\n"
    )
    run_both(script, str(export), home=home)
    assert len(History(home).ids()) == 250 and len(History(home).recent(1000)) == 250


def test_two_taggers_on_one_record_lose_no_tag(home):
    record_id = History(home).add({"kind": "generation", "prompt": "p", "output": "o"})
    script = (
        "import os, sys\nfrom core.history.store import History\nh = History(sys.argv[1])\n"
        "for i in range(40):\n    h.update(sys.argv[2], add_tags=[f'{os.getpid()}-{i}'])\n"
    )
    run_both(script, record_id, home=home)
    assert len(History(home).get(record_id)["tags"]) == 80


def test_a_tagger_and_a_starrer_labeller_noter_on_one_record_keep_each_others_changes(home):
    record_id = History(home).add({"kind": "generation", "prompt": "p", "output": "o"})
    script = (
        "import os, sys\nfrom core.history.store import History\nh, rid = History(sys.argv[1]), sys.argv[2]\n"
        "first = h.update(rid, add_tags=[f'claim-{os.getpid()}'])['tags'] == [f'claim-{os.getpid()}']\n"
        "for i in range(30):\n"
        "    if first:\n        h.update(rid, add_tags=[f't{i}'])\n"
        "    else:\n        h.update(rid, starred=i % 2 == 0, label='good' if i % 2 else 'bad', note=f'n{i}')\n"
    )
    run_both(script, record_id, home=home)
    record = History(home).get(record_id)
    assert {f"t{i}" for i in range(30)} <= set(record["tags"])  # the tagger's 30, and the other's note:
    assert record["note"] == "n29" and record["label"] == "good" and record["starred"] is False


def test_two_prompt_savers_keep_every_version_once(home):
    from core.data.prompts import PromptStore

    script = (
        "import os, sys\nfrom core.data.prompts import PromptStore, PromptVersion\ns = PromptStore(sys.argv[1])\n"
        "for i in range(20):\n"
        "    s.save('p', PromptVersion(f'{{{{text}}}} {os.getpid()} {i}'))\n"
        "    s.save('p', PromptVersion(f'{{{{text}}}} shared {i}'))\n"
    )
    run_both(script, home=home)
    versions = PromptStore(home).versions("p")
    assert len(versions) == 60 and len({v["id"] for v in versions}) == 60  # 20 each, and 20 shared once


def test_two_pinners_keep_both_baselines(home):
    from core.evals.stored import RUNS_TABLE, SUMMARY_FILE, EvalRuns
    from core.history.store import now_iso
    from core.storage.meta import Meta

    for n in (1, 2):  # two finished evals, as `store` leaves them: a summary and a row in the list
        summary = {
            "id": f"e{n}", "created_at": now_iso(), "dataset": f"d{n}", "split": "eval", "status": "done",
            "variants": [{"label": "base", "pass_rate": 0.5}, {"label": "lora", "pass_rate": 1.0}], "items": {},
        }  # fmt: skip
        (home / "evals" / f"e{n}").mkdir(parents=True)
        (home / "evals" / f"e{n}" / SUMMARY_FILE).write_text(json.dumps(summary))
        Meta(home).write(lambda db, row=summary: db.table(RUNS_TABLE).insert(row))
    script = (
        "import os, sys\nfrom core.evals.stored import EvalRuns\nruns = EvalRuns(sys.argv[1])\n"
        "mine = runs.meta.write(lambda db: 'e1' if db.table('claims').insert({'pid': os.getpid()}) == 1 else 'e2')\n"
        "for i in range(20):\n    runs.pin(mine, i % 2)\n"
    )
    run_both(script, home=home)
    pinned = {key: EvalRuns(home).baseline_for(key, "eval") for key in ("d1", "d2")}
    assert all(found is not None for found in pinned.values()), pinned


def test_two_cache_writers_keep_every_result_once(home):

    script = (
        "import os, sys\nfrom core.evals.cache import GenerationCache\nc = GenerationCache(sys.argv[1])\n"
        "for i in range(10):\n"
        "    c.put_many({f'{os.getpid()}-{i}-{j}': {'output': 'o'} for j in range(5)})\n"
        "    c.put_many({f'shared-{i}': {'output': 's'}})\n"
    )
    run_both(script, home=home)
    keys = [
        d["k"] for shard in (home / "cache").glob("*.json") for d in json.loads(shard.read_text())["_default"].values()
    ]
    assert len(keys) == 110 and len(set(keys)) == 110  # 50 each, and 10 shared once


def test_every_file_tunelab_writes_is_the_users_alone(tmp_path, home, capsys):
    """gen, eval, train, merge and export (in this process: torch loads once; the run is its own process),
    then a walk of the data and config dirs: 0600 files, 0700 folders."""
    import stat

    from core.storage.paths import private_files
    from core.training.runs import Runs
    from tests.conftest import here

    config = tmp_path / "config"  # the home fixture's TUNELAB_CONFIG_DIR
    steps = [
        ("gen", "Anna was a", "--raw", "--max-new-tokens", "4"),
        ("eval", "--no-prompt", "--limit", "4"),
        ("train", "--max-steps", "2", "--eval-every", "1", "--save-every", "1", "--batch-size", "4"),
    ]
    before = os.umask(0o022)  # a usual umask: the files must come out private all the same
    try:
        private_files()  # as the launcher does first in every tunelab process
        for args in steps:
            done = here(capsys, *args)
            assert done.returncode == 0, (args, done.stderr[-1500:])
        run_id = next((home / "runs").iterdir()).name
        assert Runs(home).status(run_id).state == "done"
        done = here(capsys, "adapters", "merge", run_id, "--out", str(home / "merged"))
        assert done.returncode == 0, done.stderr[-1500:]
    finally:
        os.umask(before)
    from tests.conftest import tunelab  # the launcher's own umask: a real process, torch-free and quick

    assert tunelab("history", "export", "--out", str(home / "export.jsonl"), home=home).returncode == 0
    wide = []
    for root in (home, config):
        for path in [root, *root.rglob("*")] if root.exists() else []:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if path.is_symlink():
                continue
            if mode & 0o077:
                wide.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    assert not wide, wide
