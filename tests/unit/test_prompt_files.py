"""Prompt versions as diffable TOML files: `prompts export DIR` writes each name's latest version, `prompts
import DIR` reads them back with the ids they had (multi-line templates, system prompts, parameters and
shots included); a bad file is one line naming it and nothing of the folder is saved."""

from core.data.prompts import PromptStore, PromptVersion
from core.data.shots import Shots
from tests.conftest import here

VERSIONS = {
    "senti": PromptVersion("{{text}} Overall, this review is", mode="raw"),
    "qa/chat": PromptVersion(
        'Question: {{q}}\nAnswer in "quotes" with {braces}:',
        system="Be brief.\nNo lists.",
        mode="chat",
        params={"max_new_tokens": 32, "temperature": 0.7, "seed": 3, "stop": ["\n\n"]},
    ),
    "fewshot": PromptVersion("{{text}} ->", mode="raw", shots=Shots(4, "similar", separator="\n---\n")),
}


def test_export_then_import_gives_the_same_ids(home, tmp_path, capsys, monkeypatch):
    store = PromptStore(home)
    store.save("senti", PromptVersion("an older senti {{text}}", mode="raw"))
    for name, version in VERSIONS.items():
        store.save(name, version)
    done = here(capsys, "prompts", "export", str(tmp_path / "prompts"))
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "prompts").iterdir())
    assert files == ["fewshot.toml", "qa_chat.toml", "senti.toml"]  # one per name, its latest version
    other = tmp_path / "other-home"
    monkeypatch.setenv("TUNELAB_HOME", str(other))
    done = here(capsys, "prompts", "import", str(tmp_path / "prompts"))
    assert done.returncode == 0, done.stderr
    imported = {row["name"]: row["id"] for row in PromptStore(other).versions()}
    assert imported == {name: version.id for name, version in VERSIONS.items()}
    (tmp_path / "prompts" / "broken.toml").write_text('template = "{{oops"\n')
    refused = here(capsys, "prompts", "import", str(tmp_path / "prompts"))
    assert refused.returncode == 2 and "broken.toml" in refused.stderr and len(refused.stderr.splitlines()) == 1
