"""Tiny random models of real families (Llama-2/3, Qwen2/3, Gemma, Mistral, Zephyr, Phi-3, GPT-2) with the chat
templates they ship: training sees exactly the ids generation sends, answers end where generation stops,
and templates that refuse a system turn get it folded in."""

import pytest

from core.data.datasets import Item
from core.data.graders import final_answer, parse_grader
from core.data.prompts import PromptVersion, item_prompt
from core.engine.loading import load
from core.engine.params import GenParams
from core.engine.prompt import Prompt, end_of_turn, render, stop_ids
from core.errors import TunelabError
from core.training.config import TrainConfig
from core.training.data import encode as training_example
from tests.tiny_models import CHATML as CHATML_TEMPLATE
from tests.tiny_models import FAMILIES, plain_peft_adapter

pytestmark = pytest.mark.slow
BY_NAME = {f.name: f for f in FAMILIES}
CASES = [(f.name, mode) for f in FAMILIES for mode in (("raw", "chat") if f.template else ("raw",))]
ITEM = Item("r1", {"text": "the film was great", "system": "Answer in one word."}, "positive", "t.jsonl:1")


@pytest.fixture(scope="module")
def loaded(tiny_models):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load(str(tiny_models[name]))
        return cache[name]

    return get


def sent_ids(model, prompt: Prompt, batched: bool) -> list[int]:
    """The ids the model's generate() received for `prompt` (padding removed)."""
    from core.engine.generation import generate, generate_batch

    seen = []
    real = model.model.generate

    def spy(*args, **kwargs):
        ids, mask = kwargs.get("input_ids", args[0] if args else None), kwargs.get("attention_mask")
        row = ids[0].tolist() if mask is None else [t for t, m in zip(ids[0].tolist(), mask[0].tolist()) if m]
        seen.append(row)
        return real(*args, **kwargs)

    model.model.generate = spy
    try:
        params = GenParams(max_new_tokens=2, temperature=0)
        if batched:
            generate_batch(model, [prompt], params, on_result=lambda i, r: None)
        else:
            generate(model, prompt, params, emit=lambda text, n: None)
    finally:
        del model.model.generate
    return seen[0]


MIXED = ("Hi", "The film was a quiet joy with bright actors and a slow plot that ends well", "Dull.", "One two three")


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_batched_greedy_outputs_are_the_sequential_ones_on_mixed_length_batches(loaded, family):
    """Left padding changes nothing but the float rounding: where a batched and a single greedy run part,
    the two tokens they chose tie (to 1e-3 of the logits' range) on the single run's own logits."""
    import torch

    from core.engine.generation import generate, generate_batch

    model = loaded(family)
    prompts = [Prompt(text, mode="raw") for text in MIXED]
    params = GenParams(max_new_tokens=6, min_new_tokens=6, temperature=0)
    made: list[list[int]] = []
    real = model.model.generate

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        width = (kwargs.get("input_ids", args[0] if args else None)).shape[1]
        made.extend(out[:, width:].tolist())
        return out

    model.model.generate = spy
    try:
        for prompt in prompts:
            generate(model, prompt, params, emit=lambda text, n: None)
        generate_batch(model, prompts, params, on_result=lambda i, r: None)
    finally:
        del model.model.generate
    by_length = sorted(range(len(prompts)), key=lambda i: len(sent_ids(model, prompts[i], batched=False)))
    batched = dict(zip(by_length, made[len(prompts) :], strict=True))
    for i, prompt in enumerate(prompts):
        single, together = made[i], batched[i]
        part = next((k for k, (a, b) in enumerate(zip(single, together, strict=True)) if a != b), None)
        if part is None:
            continue
        ids = torch.tensor([sent_ids(model, prompt, batched=False) + single[:part]])
        with torch.inference_mode():
            logits = model.model(input_ids=ids).logits[0, -1]
        gap = abs(float(logits[single[part]] - logits[together[part]]))
        assert gap <= 1e-3 * float(logits.max() - logits.min()), (family, MIXED[i], part, gap)


@pytest.mark.parametrize("family, mode", CASES)
@pytest.mark.parametrize("with_prompt", [True, False], ids=["prompt-version", "as-is"])
def test_training_ids_are_the_ids_generation_sends(loaded, family, mode, with_prompt):
    model = loaded(family)
    version = PromptVersion("Review: {{text}}", "{{system}}", mode) if with_prompt else None
    config = TrainConfig(mode=mode)
    example = training_example(model, config, version, ITEM)
    prompt = item_prompt(version, ITEM, None if with_prompt or mode == "raw" else mode)
    for batched in (False, True):
        ids = sent_ids(model, prompt, batched)
        assert example.ids[: len(ids)] == ids, f"{family} {mode} batched={batched}"
        assert example.labels[: len(ids)] == [-100] * len(ids)  # loss on the answer only
    bos = model.tokenizer.bos_token_id
    assert (
        ids.count(bos) == (1 if BY_NAME[family].adds_bos or "bos_token" in (BY_NAME[family].template or "") else 0)
        or mode == "raw"
    )
    if BY_NAME[family].adds_bos:
        assert ids[0] == bos and ids[1] != bos  # BOS once, whether the tokenizer or the template writes it


@pytest.mark.parametrize("family, mode", CASES)
def test_the_answer_ends_with_the_token_generation_stops_at(loaded, family, mode):
    model = loaded(family)
    tok = model.tokenizer
    example = training_example(model, TrainConfig(mode=mode), None, ITEM)
    last = tok.convert_ids_to_tokens(example.ids[-1])
    expected = BY_NAME[family].end_of_turn if mode == "chat" else "</s>"
    assert last == expected
    assert example.ids[-1] in stop_ids(tok, model.model.generation_config.eos_token_id)


def test_a_thinking_template_trains_its_think_block_and_grading_reads_the_answer_after_it(loaded):
    model = loaded("qwen3")
    example = training_example(model, TrainConfig(mode="chat"), None, ITEM)
    learned = [i for i, label in zip(example.ids, example.labels, strict=True) if label != -100]
    shown = model.tokenizer.decode(learned, skip_special_tokens=True)  # as generation decodes these ids
    assert shown == "<think>\n\n</think>\n\npositive"
    assert final_answer(shown) == "positive" and parse_grader("exact")(final_answer(shown), "positive").passed


@pytest.mark.parametrize("family", [f.name for f in FAMILIES if f.refuses_system])
def test_a_template_that_refuses_a_system_turn_gets_it_folded_into_the_first_user_turn(loaded, family):
    tok = loaded(family).tokenizer
    text = render(tok, Prompt("What is 2+2?", "Answer in one word.", "chat"), family)
    assert "Answer in one word.\n\nWhat is 2+2?" in text
    multi = Prompt(
        "",
        "Be brief.",
        "chat",
        ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "ok?"}),
    )
    assert render(tok, multi, family).count("Be brief.") == 1


@pytest.mark.parametrize("family", [f.name for f in FAMILIES if f.refuses_system][:1])
def test_the_rendered_view_says_once_that_the_system_prompt_was_folded(tiny_models, family):
    from core.engine.host import ModelHost
    from core.engine.options import ModelOptions
    from core.engine.prompt import FOLD_NOTE

    host = ModelHost()
    host.load(ModelOptions(str(tiny_models[family])))
    text, tokens, note = host.render(Prompt("What is 2+2?", "Answer in one word.", "chat"))
    assert note == FOLD_NOTE and "Answer in one word.\n\nWhat is 2+2?" in text and tokens > 0
    assert host.render(Prompt("What is 2+2?", "", "chat"))[2] == ""  # nothing folded, nothing said


def test_end_of_turn_is_found_from_the_template_itself(loaded):
    for family in FAMILIES:
        tok = loaded(family.name).tokenizer
        found = end_of_turn(tok)
        assert (tok.convert_ids_to_tokens(found) if found is not None else None) == family.end_of_turn, family.name


def test_an_adapter_for_another_base_is_one_line_naming_both(tiny_models, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from core.engine.host import ModelHost
    from core.engine.options import ModelOptions

    config = AutoConfig.from_pretrained(tiny_models["llama2"])
    config.update({"hidden_size": 48, "head_dim": 24, "intermediate_size": 96})
    wider = tmp_path / "wider-llama"
    AutoModelForCausalLM.from_config(config).save_pretrained(wider)
    adapter = plain_peft_adapter(wider, tmp_path / "wider-lora")
    host = ModelHost()
    host.load(ModelOptions(str(tiny_models["llama2"])))
    with pytest.raises(TunelabError) as caught, host.using(str(adapter)):
        pass
    message = str(caught.value)
    assert "\n" not in message and f"trained on {wider}, not on the loaded model {tiny_models['llama2']}" in message
    assert "first mismatch: " in message
    with host.using(None):  # the host is still usable
        pass


def test_a_plain_peft_adapter_saved_as_a_pickle_is_found_and_applied(tiny_models, tmp_path, home):
    import torch

    from core.engine.host import ModelHost
    from core.engine.options import ModelOptions
    from core.storage.runfolders import resolve_adapter

    adapter = plain_peft_adapter(tiny_models["llama3"], tmp_path / "old-lora", safe=False)
    assert (adapter / "adapter_model.bin").is_file() and not (adapter / "adapter_model.safetensors").exists()
    assert resolve_adapter(home, str(adapter)) == adapter
    host = ModelHost()
    host.load(ModelOptions(str(tiny_models["llama3"])))
    ids = torch.tensor([[5, 6, 7, 8]])
    logits = []
    for ref in (None, str(adapter)):
        with host.using(ref) as loaded, torch.no_grad():
            logits.append(loaded.model(input_ids=ids).logits)
    assert not torch.allclose(logits[0], logits[1])  # its weights (not zero-initialized) are applied


def test_merge_of_a_plain_peft_adapter_keeps_the_base_dtype_and_template(tiny_models, tmp_path, home):
    import torch
    from transformers import AutoModelForCausalLM

    from core.training.adapters import merge

    base = tmp_path / "bf16-base"
    model = AutoModelForCausalLM.from_pretrained(tiny_models["qwen2"], dtype=torch.bfloat16)
    model.save_pretrained(base)
    load(str(tiny_models["qwen2"])).tokenizer.save_pretrained(base)
    adapter = plain_peft_adapter(base, tmp_path / "lora", dtype=torch.bfloat16)
    out = merge(home, str(adapter), tmp_path / "merged")  # the base is read from adapter_config.json
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_slice(name).get_dtype() for name in weights.keys()}
    assert dtypes == {"BF16"}
    assert load(str(out)).tokenizer.chat_template == CHATML_TEMPLATE


@pytest.mark.parametrize("family", ["qwen2", "llama3", "gemma", "phi3", "llama2", "mistral", "zephyr"])
def test_multi_turn_rows_learn_every_assistant_turn_but_weight_zero_ones(loaded, family):
    model = loaded(family)
    tok = model.tokenizer
    turns = (
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": "3+3?"},
        {"role": "assistant", "content": "SKIPPED", "weight": 0},
        {"role": "user", "content": "4+4?"},
    )
    item = Item("m1", {"input": "4+4?"}, "eight", "chat.jsonl:1", messages=turns)
    example = training_example(model, TrainConfig(mode="chat"), None, item)
    learned = tok.decode([i for i, label in zip(example.ids, example.labels, strict=True) if label != -100])
    assert "four" in learned and "eight" in learned and "SKIPPED" not in learned and "2+2" not in learned
    prompt = item_prompt(None, item, "chat")
    sent = sent_ids(model, prompt, batched=False)
    assert example.ids[: len(sent)] == sent  # still exactly the ids generation sends


def test_chat_training_on_a_model_without_a_template_is_refused_before_a_run_exists(tiny_models, home):
    from core.training.runs import Runs

    runs = Runs(home)
    with pytest.raises(TunelabError, match="has no chat template: mode chat needs one"):
        runs.create(TrainConfig(model=str(tiny_models["gpt2"]), mode="chat"))
    assert list(runs.folder.iterdir()) == []
    assert runs.create(TrainConfig(model=str(tiny_models["qwen2"]), mode="chat"))  # one that ships a template


def test_lora_targets_come_from_the_config_alone_and_include_conv1d(tiny_models):
    from core.engine.loading import module_names_from_config

    assert "c_attn" in module_names_from_config(str(tiny_models["gpt2"]))  # GPT-2's Conv1D, as peft adapts it
    assert {"q_proj", "v_proj"} <= set(module_names_from_config(str(tiny_models["llama2"])))
    with pytest.raises(TunelabError, match="unknown target module 'foo_proj' \\(valid: all-linear, .*c_attn"):
        TrainConfig(target_modules=("foo_proj",)).check_targets(module_names_from_config(str(tiny_models["gpt2"])))


PREAMBLE = "Label each review. Review: a fine film, said one. Label: positive."  # 60+ byte tokens


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_a_shared_prefix_reused_gives_the_plain_paths_greedy_outputs(loaded, family, monkeypatch):
    """k-shot prompts open with the same demonstrations: their cache computed once and repeated over the batch
    (the suffixes left-padded after it) gives exactly the tokens the plain left-padded batch gives."""
    import core.engine.generation as generation

    model = loaded(family)
    prompts = [Prompt(f"{PREAMBLE} Review: {text} Label:", mode="raw") for text in MIXED]
    params = GenParams(max_new_tokens=6, min_new_tokens=6, temperature=0)
    reused, plain, calls = {}, {}, []
    real = model.model.generate

    def spy(*args, **kwargs):
        calls.append("past_key_values" in kwargs)
        return real(*args, **kwargs)

    model.model.generate = spy
    try:
        generation.generate_batch(model, prompts, params, on_result=lambda i, r: reused.__setitem__(i, r))
        monkeypatch.setattr(generation, "PREFIX_MIN", 10**9)
        generation.generate_batch(model, prompts, params, on_result=lambda i, r: plain.__setitem__(i, r))
    finally:
        del model.model.generate
    assert calls == [True, False]  # the first run reused the prefix, the second did not
    assert {i: r["output"] for i, r in reused.items()} == {i: r["output"] for i, r in plain.items()}
    assert [reused[i]["prompt_tokens"] for i in range(4)] == [plain[i]["prompt_tokens"] for i in range(4)]
