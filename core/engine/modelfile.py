"""An Ollama Modelfile beside an exported GGUF: the model's Jinja chat template in Ollama's Go template syntax,
and its stop tokens. The template is not parsed: it is rendered over marked messages and its shape read off
the text (a head, then each message as opener + role label + closer + content + end, then the generation
prompt: the role-tag shape of ChatML, Llama 3, Phi-3, Zephyr, Gemma and the demo's), and kept only when that
shape reproduces the template on other conversations; tunelab's own folding of a system turn into the first
user turn, for templates that refuse one, is translated too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.engine.prompt import adds_bos, fold_system, stop_ids
from core.storage.runfolders import read_json

MARK = "\ue000{}\ue001"  # private-use characters: message text no template writes itself
LABELS = {"system": ("system",), "user": ("user",), "assistant": ("assistant", "model")}
PROBES = (("system", "user", "assistant", "user"), ("user", "assistant", "user"))
CHECKS = (("user",), ("user", "assistant", "user", "assistant", "user"), ("system", "user", "assistant", "user"))

Render = Callable[[list[dict[str, str]], bool], str]  # (messages, add_generation_prompt) -> text


class NotTranslated(Exception):
    """Why a chat template has no Go translation here (said in the Modelfile and on stderr)."""


@dataclass(frozen=True)
class ChatShape:
    head: str  # once, before the first message
    opener: str  # before each message's role label
    labels: dict[str, str]  # role -> the label its header writes
    closer: str  # after the label, before the content
    end: str  # after each message's content
    generation: str  # after the last message: the assistant's header
    folds_system: bool = False  # the template refuses a system turn: it goes into the first user turn

    def render(self, messages: list[dict[str, str]]) -> str:
        """What the Go template writes for `messages` (the Jinja template must write the same)."""
        if self.folds_system:
            messages = fold_system(messages)
        body = "".join(f"{self.opener}{self.labels[m['role']]}{self.closer}{m['content']}{self.end}" for m in messages)
        return self.head + body + self.generation


def conversation(roles: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"role": role, "content": MARK.format(i)} for i, role in enumerate(roles)]


def chat_shape(render: Render, bos: str | None) -> ChatShape:
    """The template's role-tag shape, checked against it on conversations of one to five turns."""
    for roles in PROBES:
        try:
            text = render(conversation(roles), True)
        except Exception:  # the template's own raise_exception (a refused system turn) or a jinja error
            continue
        shape = _read_shape(text, roles, bos)
        for check in CHECKS:
            messages = conversation(check)
            wanted = render(fold_system(messages) if "system" not in roles else messages, True)
            if shape.render(messages) != wanted:
                raise NotTranslated(f"its turns are not all written alike (as with {len(check)} messages)")
        return shape
    raise NotTranslated("it renders no plain user/assistant conversation")


def _split_label(segment: str, role: str) -> tuple[str, str, str]:
    for label in LABELS[role]:
        at = segment.rfind(label)
        if at != -1:
            return segment[:at], label, segment[at + len(label) :]
    raise NotTranslated(f"its message headers do not name the role ('{role}')")


def _read_shape(text: str, roles: tuple[str, ...], bos: str | None) -> ChatShape:
    marks = [MARK.format(i) for i in range(len(roles))]
    starts, at = [], 0
    for mark in marks:
        found = text.find(mark, at)
        if found == -1 or text.count(mark) != 1:
            raise NotTranslated("it does not write each message's content once, as given")
        starts.append(found)
        at = found + len(mark)
    segments = [text[: starts[0]]] + [text[starts[k - 1] + len(marks[k - 1]) : starts[k]] for k in range(1, len(marks))]
    parts = [_split_label(segment, role) for segment, role in zip(segments, roles)]
    closers = {closer for _, _, closer in parts}
    befores = {before for before, _, _ in parts[1:]}
    if len(closers) != 1 or len(befores) != 1:
        raise NotTranslated("its message headers differ from role to role")
    first, between = parts[0][0], befores.pop()
    if between.endswith(first):
        head, opener = "", first
    elif bos and first.startswith(bos) and between.endswith(first[len(bos) :]):
        head, opener = bos, first[len(bos) :]
    else:
        raise NotTranslated("its first message's header is not the others'")
    end, tail = between[: len(between) - len(opener)], text[at:]
    if not tail.startswith(end):
        raise NotTranslated("its last message does not end as the others do")
    labels = {role: label for (_, label, _), role in zip(parts, roles)}
    labels.setdefault("system", "system")
    return ChatShape(head, opener, labels, closers.pop(), end, tail[len(end) :], "system" not in roles)


def go_template(shape: ChatShape, drop_bos: str | None = None) -> str:
    """The shape in Ollama's Go template syntax over `.Messages`; `drop_bos`: a head that is the BOS text,
    left out where the runtime adds BOS itself (else it would be there twice)."""
    literals = (shape.head, shape.opener, shape.closer, shape.end, shape.generation, *shape.labels.values())
    if any("{{" in text or '"""' in text or "\\" in text for text in literals):
        raise NotTranslated("its text holds characters a Modelfile template cannot")
    if all(label == role for role, label in shape.labels.items()):
        role = "{{ .Role }}"
    else:
        branches = "".join(
            f'{{{{ if eq .Role "{r}" }}}}{label}{{{{ else }}}}' for r, label in shape.labels.items() if label != r
        )
        role = branches + "{{ .Role }}" + "{{ end }}" * sum(label != r for r, label in shape.labels.items())
    header = f"{shape.opener}{role}{shape.closer}"
    if shape.folds_system:
        body = (
            '{{ $system := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ else }}'
            + header
            + '{{ if and $system (eq .Role "user") }}{{ $system }}\n\n{{ $system = "" }}{{ end }}{{ .Content }}'
            + shape.end
            + "{{ end }}{{ end }}"
        )
    else:
        body = "{{ range .Messages }}" + header + "{{ .Content }}" + shape.end + "{{ end }}"
    head = "" if drop_bos and shape.head == drop_bos else shape.head
    return head + body + shape.generation


def modelfile_text(gguf_name: str, template: str | None, why: str, stops: list[str]) -> str:
    """The Modelfile: FROM, TEMPLATE (or a note on why there is none), the stop tokens, and no repeat penalty,
    so that Ollama's greedy answers are tunelab's (its default penalty is 1.1)."""
    lines = ["# written by tunelab: ollama create NAME -f Modelfile", f"FROM ./{gguf_name}"]
    if template is not None:
        lines.append(f'TEMPLATE """{template}"""')
    else:
        lines += [
            f"# tunelab could not translate the chat template into Ollama's syntax: {why}.",
            "# Ollama then uses a template it recognises from the GGUF's tokenizer.chat_template, if any;",
            "# write a TEMPLATE here for chat through Ollama to match tunelab's.",
        ]
    lines += [f'PARAMETER stop "{stop}"' for stop in stops if stop and '"' not in stop and "\n" not in stop]
    lines.append("PARAMETER repeat_penalty 1")
    return "\n".join(lines) + "\n"


def write_modelfile(folder: Path, gguf_path: Path, out: Path) -> list[str]:
    """The Modelfile for the GGUF exported from model folder `folder`; the notes to tell the user."""
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(folder)
    eos = (read_json(folder / "generation_config.json") or {}).get("eos_token_id")
    stops = [str(tokenizer.convert_ids_to_tokens(i)) for i in stop_ids(tokenizer, eos)]
    template, why, notes = None, "the model has no chat template", []
    if tokenizer.chat_template:

        def render(messages: list[dict[str, str]], generation: bool) -> str:
            return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation))

        try:
            shape = chat_shape(render, tokenizer.bos_token)
            template = go_template(shape, tokenizer.bos_token if adds_bos(tokenizer) else None)
        except NotTranslated as exc:
            why = str(exc)
    if template is None:
        notes.append(f"{out} has no TEMPLATE: tunelab could not translate the chat template ({why})")
    out.write_text(modelfile_text(gguf_path.name, template, why, stops), encoding="utf-8")
    return notes
