import pytest

from core.data.prompts import PromptStore, PromptVersion, read_prompt_file
from core.errors import TunelabError


def test_id_is_a_content_hash_over_system_template_mode_and_params():
    a = PromptVersion("Review: {{text}}\nSentiment:")
    assert a.id == PromptVersion("Review: {{text}}\nSentiment:").id
    assert a.id != PromptVersion("Review: {{text}}\nLabel:").id
    assert a.id != PromptVersion("Review: {{text}}\nSentiment:", system="be terse").id
    assert a.id != PromptVersion("Review: {{text}}\nSentiment:", params={"max_new_tokens": 3}).id
    assert a.id != PromptVersion("Review: {{text}}\nSentiment:", mode="raw").id


def test_bad_versions_are_refused_early():
    with pytest.raises(TunelabError, match="template: "):
        PromptVersion("{{ x.y }}")
    with pytest.raises(TunelabError, match="top_p"):
        PromptVersion("x", params={"top_p": 9})


def test_saving_is_idempotent_and_versions_are_numbered(home):
    store = PromptStore(home)
    v1, v2 = PromptVersion("A {{text}}"), PromptVersion("B {{text}}")
    assert store.save("senti", v1) == store.save("senti", v1) == v1.id
    store.save("senti", v2)
    rows = store.versions("senti")
    assert [(r["number"], r["id"]) for r in rows] == [(2, v2.id), (1, v1.id)]
    assert store.get("senti")[1] == v2 and store.get("senti@1")[1] == v1 and store.get(v1.id[:6])[1] == v1
    assert store.get(f"senti@{v1.id[:6]}")[1] == v1  # the form eval labels show (senti@4ab7b9)
    with pytest.raises(TunelabError, match="no prompt version 'senti@3'"):
        store.get("senti@3")


def test_diff_between_versions(home):
    store = PromptStore(home)
    store.save("p", PromptVersion("Review: {{text}}\nSentiment:", params={"max_new_tokens": 4}))
    store.save("p", PromptVersion("Review: {{text}}\nAnswer positive or negative:", params={"max_new_tokens": 2}))
    diff = store.diff("p@1", "p@2")
    assert diff.startswith("--- p@1 (") and "+++ p@2 (" in diff
    assert "-Sentiment:\n" in diff and "+Answer positive or negative:\n" in diff
    assert "-  max_new_tokens = 4\n" in diff and "+  max_new_tokens = 2\n" in diff
    assert " Review: {{text}}\n" in diff


def test_prompt_files(tmp_path):
    f = tmp_path / "senti.toml"
    f.write_text('system = "Classify."\nmode = "raw"\ntemplate = "Review: {{text}}"\n[params]\nmax_new_tokens = 3\n')
    name, v = read_prompt_file(f)
    assert name == "senti" and v.mode == "raw" and v.gen_params.max_new_tokens == 3
    f.write_text('template = "x"\ncolour = 1\n')
    with pytest.raises(TunelabError, match="senti.toml: unknown key 'colour'"):
        read_prompt_file(f)
    f.write_text('template = "{{oops"\n')
    with pytest.raises(TunelabError, match="senti.toml: template: unbalanced"):
        read_prompt_file(f)


@pytest.mark.parametrize(
    "text, message",
    [
        ('template = "x"\nparams = "x"\n', r"\[params\] must be a table"),
        ('template = "x"\nsystem = 5\n', "'system' must be a string, got int"),
        ('template = "x"\nmode = []\n', "'mode' must be a string, got list"),
        ('template = "x"\nname = 1.5\n', "'name' must be a string, got float"),
    ],
)
def test_prompt_files_of_the_wrong_types_are_one_line(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(TunelabError, match=f"prompt file p.toml: {message}"):
        read_prompt_file(path)
