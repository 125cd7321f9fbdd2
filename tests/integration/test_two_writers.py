"""Two writers at once, as two terminals do it: nothing lost, nothing duplicated, nobody waits forever."""

import json
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
