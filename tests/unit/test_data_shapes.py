"""Data files as other tools write them: JSON arrays, ShareGPT, OpenAI messages with parts and tool calls,
alpaca history, Parquet, LLaMA-Factory's dataset_info.json, and a file with no splits split by id."""

import json

import pytest

from core.data.datasets import load_dataset
from core.errors import TunelabError

ALPACA = [
    {"instruction": "Describe a process of making crepes.", "input": "", "output": "Making crepes is easy."},
    {"instruction": "Translate", "input": "bonjour", "output": "hello", "system": "Be brief.", "history": []},
    {"instruction": "And now?", "input": "", "output": "goodbye", "history": [["Say hi", "hi"]]},
]
SHAREGPT = [
    {
        "conversations": [
            {"from": "human", "value": "What is 2+2?"},
            {"from": "gpt", "value": "4"},
            {"from": "human", "value": "And 3+3?"},
            {"from": "gpt", "value": "6"},
        ],
        "system": "You are a calculator.",
    },
    {
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
            {"from": "observation", "value": '{"temp": 21}'},
            {"from": "gpt", "value": "21 degrees."},
        ]
    },
]


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def test_alpaca_json_array_as_llama_factory_ships_it(tmp_path):
    ds = load_dataset(str(write_json(tmp_path / "alpaca_en_demo.json", ALPACA)), holdout=0)
    first, second, third = ds.items
    assert ds.format == "alpaca" and first.expected == "Making crepes is easy." and first.where.endswith("json[0]")
    assert first.id == first.digest[:12] and not first.named and not first.messages  # named by its content
    assert second.vars["system"] == "Be brief." and not second.messages  # an empty history stays a row of fields
    assert [t["role"] for t in third.messages] == ["user", "assistant", "user"] and third.expected == "goodbye"


def test_sharegpt_turns_system_and_tool_calls(tmp_path):
    ds = load_dataset(str(write_json(tmp_path / "glaive.json", SHAREGPT)), holdout=0)
    chat, tools = ds.items
    assert ds.format == "sharegpt"
    assert [t["role"] for t in chat.messages] == ["system", "user", "assistant", "user"] and chat.expected == "6"
    assert chat.vars == {"input": "And 3+3?", "system": "You are a calculator."}
    assert tools.messages[1]["tool_calls"][0]["function"] == {"name": "weather", "arguments": {"city": "Paris"}}
    assert tools.messages[2] == {"role": "tool", "content": '{"temp": 21}'} and tools.expected == "21 degrees."


def test_openai_messages_with_text_parts_tool_calls_and_weights(tmp_path):
    row = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be"}, {"type": "text", "text": "kind."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!", "weight": 0},
            {"role": "user", "content": "Time?"},
            {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "now"}}]},
            {"role": "tool", "content": "12:00", "tool_call_id": "c1"},
            {"role": "assistant", "content": "Noon."},
        ]
    }
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (item,) = load_dataset(str(path), holdout=0).items
    assert item.messages[0]["content"] == "Be\nkind." and item.messages[2]["weight"] == 0
    assert item.messages[4]["tool_calls"] and item.messages[5]["tool_call_id"] == "c1" and item.expected == "Noon."


def test_llama_factory_v1_rows_name_the_text_value_and_the_weight_loss_weight(tmp_path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "value": "hi"}], "loss_weight": 0.0},
                {"role": "assistant", "content": [{"type": "text", "value": "Hello!"}], "loss_weight": 1.0},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": [{"type": "text", "value": "Be brief."}], "loss_weight": 0.0},
                {"role": "user", "content": [{"type": "text", "value": "2+2?"}], "loss_weight": 0.0},
                {"role": "assistant", "content": [{"type": "text", "value": "4"}], "loss_weight": 0.0},
                {"role": "user", "content": [{"type": "text", "value": "3+3?"}], "loss_weight": 0.0},
                {"role": "assistant", "content": [{"type": "text", "value": "6"}], "loss_weight": 1.0},
            ]
        },
    ]
    path = tmp_path / "lf_v1_sft_demo.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first, second = load_dataset(str(path), holdout=0).items
    assert first.messages == ({"role": "user", "content": "hi", "weight": 0},) and first.expected == "Hello!"
    assert [t["content"] for t in second.messages] == ["Be brief.", "2+2?", "4", "3+3?"] and second.expected == "6"
    assert second.messages[2]["weight"] == 0
    bad = tmp_path / "bad_v1.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": [{"type": "image", "value": "x.png"}]}]}))
    with pytest.raises(TunelabError, match=r"bad_v1.jsonl:1: messages\[0\]: content\[0\] is a 'image' part"):
        load_dataset(str(bad), holdout=0)
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "x", "loss_weight": 0.5}]}))
    with pytest.raises(TunelabError, match=r"messages\[0\]: 'loss_weight' must be 0 or 1"):
        load_dataset(str(bad), holdout=0)


@pytest.mark.parametrize(
    "row, message",
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            r"bad.jsonl:1: messages\[0\]: content\[0\] is a 'image_url' part; only text parts are supported",
        ),
        ({"messages": [{"role": "wizard", "content": "x"}]}, r"bad.jsonl:1: messages\[0\] needs a 'role' of"),
        ({"messages": [{"role": "user", "content": "x", "weight": 2}]}, r"messages\[0\]: 'weight' must be 0 or 1"),
        ({"conversations": [{"from": "alien", "value": "x"}]}, r"conversations\[0\]: unknown speaker 'alien'"),
        ({"conversations": [{"from": "human", "value": 3}]}, r"conversations\[0\]: 'value' must be a string"),
        (
            {"conversations": [{"from": "function_call", "value": "not json"}]},
            r"a function_call value must be JSON with 'name'",
        ),
        ({"conversations": [{"from": "gpt", "value": "x"}]}, r"must end with a user \(or tool\) turn"),
        (
            {"instruction": "q", "output": "a", "history": [["only one"]]},
            r"history\[0\] must be a \[question, answer\]",
        ),
    ],
)
def test_malformed_chat_rows_are_one_line_naming_row_and_field(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(TunelabError, match=message):
        load_dataset(str(path))


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2]", r"x.json\[0\]: expected a JSON object, got int"),
        ('{"a": 1}', r"x.json: expected a JSON array of rows"),
        ("[{]", r"x.json:1: not valid JSON"),
        ('"text"', r"x.json: expected a JSON array of rows, got str"),
    ],
)
def test_bad_json_files(tmp_path, text, message):
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(TunelabError, match=message):
        load_dataset(str(tmp_path / "x.json"))


def test_json_lines_named_json_and_an_object_holding_the_rows(tmp_path):
    (tmp_path / "lines.json").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    assert [it.expected for it in load_dataset(str(tmp_path / "lines.json")).items] == ["x", "y"]
    write_json(tmp_path / "wrapped.json", {"data": [{"text": "a", "label": "x"}]})
    assert load_dataset(str(tmp_path / "wrapped.json")).items[0].vars == {"text": "a"}


def test_a_folder_of_json_split_files(tmp_path):
    write_json(tmp_path / "d" / "train.json", ALPACA[:2])
    write_json(tmp_path / "d" / "eval.json", ALPACA[2:])
    ds = load_dataset(str(tmp_path / "d"))
    assert ds.splits == ("eval", "train") and len(ds.split("train")) == 2 and not ds.held_out


def test_parquet_rows(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": "a", "label": "x", "split": "eval"}]), tmp_path / "d.parquet")
    (item,) = load_dataset(str(tmp_path / "d.parquet")).split("eval")
    assert item.vars == {"text": "a"} and item.expected == "x" and item.where == "d.parquet[0]"
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(TunelabError, match="bad.parquet: not a readable Parquet file"):
        load_dataset(str(tmp_path / "bad.parquet"))


def test_dataset_info_entries_by_name_with_renamed_columns_and_tags(tmp_path):
    write_json(tmp_path / "alpaca.json", [{"q": "Say hi", "a": "hi"}])
    write_json(tmp_path / "chat.json", [{"turns": [{"speaker": "me", "text": "Hi"}, {"speaker": "bot", "text": "Yo"}]}])
    info = {
        "alpaca_demo": {"file_name": "alpaca.json", "columns": {"prompt": "q", "response": "a"}},
        "chat_demo": {
            "file_name": "chat.json",
            "formatting": "sharegpt",
            "columns": {"messages": "turns"},
            "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"},
        },
        "hub_only": {"hf_hub_url": "someone/data"},
    }
    write_json(tmp_path / "dataset_info.json", info)
    alpaca = load_dataset(f"{tmp_path}#alpaca_demo", holdout=0)
    assert alpaca.name == "alpaca.json#alpaca_demo" and alpaca.format == "alpaca"
    assert alpaca.items[0].vars["instruction"] == "Say hi" and alpaca.items[0].expected == "hi"
    chat = load_dataset(f"{tmp_path / 'dataset_info.json'}#chat_demo", holdout=0)
    assert chat.items[0].messages == ({"role": "user", "content": "Hi"},) and chat.items[0].expected == "Yo"
    with pytest.raises(TunelabError, match="no dataset 'nope' \\(known: alpaca_demo, chat_demo, hub_only\\)"):
        load_dataset(f"{tmp_path}#nope")
    with pytest.raises(TunelabError, match="'hub_only' has no local 'file_name'"):
        load_dataset(f"{tmp_path}#hub_only")
    assert load_dataset(str(tmp_path)).items  # the folder itself: dataset_info.json is not a split


def test_a_file_with_no_splits_holds_out_the_same_rows_whatever_the_order(tmp_path):
    rows = [{"id": f"r{i}", "text": str(i), "label": "x"} for i in range(50)]
    a = load_dataset(str(write_json(tmp_path / "a.json", rows)))
    b = load_dataset(str(write_json(tmp_path / "b.json", rows[::-1])))
    held = {it.id for it in a.split("eval")}
    assert a.held_out and 1 <= len(held) <= 12 and held == {it.id for it in b.split("eval")}
    assert held.isdisjoint(it.id for it in a.split("train")) and len(a.split("train")) == 50 - len(held)
    assert len(a.split("auto")) == 50  # test cases, not a training set: every row is evaluated
    assert held < {it.id for it in load_dataset(str(tmp_path / "a.json"), holdout=0.3).split("eval")}  # nested
    with pytest.raises(TunelabError, match="eval fraction must be at least 0 and below 1"):
        load_dataset(str(tmp_path / "a.json"), holdout=1.0)


def test_duplicate_ids_in_many_rows_are_found_in_linear_time(tmp_path):
    rows = [{"id": i, "text": "t", "label": "x"} for i in range(200_000)] + [{"id": 7, "text": "t", "label": "x"}]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TunelabError, match="big.jsonl:200001: id '7' appears more than once"):
        load_dataset(str(path))


def _table(rows):
    import pyarrow as pa

    return pa.Table.from_pylist(rows)


def test_a_hub_snapshot_with_sharded_parquet_splits_reads_by_split(tmp_path):
    import pyarrow.parquet as pq

    snapshot = tmp_path / "datasets--org--sentiment" / "snapshots" / "abc123"
    (snapshot / "data").mkdir(parents=True)
    (snapshot / "README.md").write_text("# card")
    for name, rows in {
        "train-00000-of-00002": [{"text": "good film", "label": "positive"}],
        "train-00001-of-00002": [{"text": "dull film", "label": "negative"}],
        "test-00000-of-00001-9f8e7d": [{"text": "fine film", "label": "positive"}],
    }.items():
        pq.write_table(_table(rows), snapshot / "data" / f"{name}.parquet")
    ds = load_dataset(str(snapshot), expected="label")
    assert ds.splits == ("test", "train")
    assert [i.vars["text"] for i in ds.split("train")] == ["good film", "dull film"]
    assert [i.expected for i in ds.split("test")] == ["positive"]


def test_a_datasets_save_to_disk_folder_reads_each_split_folder(tmp_path):
    import pyarrow as pa

    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "dataset_dict.json").write_text('{"splits": ["train", "validation"]}')
    for split, rows in {"train": ALPACA[:2], "validation": ALPACA[2:]}.items():
        folder = tmp_path / "saved" / split
        folder.mkdir()
        table = _table(rows)
        with pa.ipc.new_stream(str(folder / "data-00000-of-00001.arrow"), table.schema) as writer:
            writer.write_table(table)  # the IPC stream `datasets` writes
        (folder / "state.json").write_text('{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}')
        (folder / "dataset_info.json").write_text("{}")
    ds = load_dataset(str(tmp_path / "saved"))
    assert ds.splits == ("train", "validation") and len(ds.split("train")) == 2
    assert ds.split("validation")[0].expected == "goodbye"


def test_a_damaged_arrow_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "train.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(TunelabError, match=r"train.arrow: not a readable Arrow file"):
        load_dataset(str(tmp_path))
