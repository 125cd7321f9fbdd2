"""Generated English for the demo model: stories, product reviews, questions and chats.

Everything is produced by small grammars from word lists written here, so the demo model and its task
carry no copied text and rebuild identically from a seed.
"""

from __future__ import annotations

import random

NAMES = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Henry",
    "Iris",
    "Jack",
    "Lena",
    "Marco",
    "Nina",
    "Oscar",
    "Paula",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Victor",
]
PEOPLE = [
    "farmer",
    "teacher",
    "baker",
    "doctor",
    "sailor",
    "painter",
    "student",
    "driver",
    "cook",
    "writer",
    "gardener",
    "child",
    "neighbor",
    "friend",
    "singer",
    "builder",
]
ANIMALS = ["dog", "cat", "horse", "bird", "fox", "rabbit", "goat", "duck", "mouse", "bear"]
PLACES = [
    "market",
    "river",
    "village",
    "garden",
    "library",
    "station",
    "beach",
    "forest",
    "school",
    "kitchen",
    "harbor",
    "bakery",
    "park",
    "museum",
    "bridge",
    "hill",
]
THINGS = [
    "apple",
    "book",
    "letter",
    "basket",
    "lamp",
    "bicycle",
    "coat",
    "cup",
    "map",
    "song",
    "boat",
    "key",
    "chair",
    "window",
    "clock",
    "bag",
    "ticket",
    "cake",
    "flower",
    "stone",
]
ADJ = [
    "old",
    "young",
    "small",
    "big",
    "quiet",
    "busy",
    "bright",
    "dark",
    "warm",
    "cold",
    "green",
    "red",
    "blue",
    "happy",
    "tired",
    "clever",
    "gentle",
    "brave",
    "new",
    "tall",
]
VERBS_PAST = [
    "walked to",
    "ran to",
    "looked at",
    "went to",
    "came back from",
    "sat near",
    "waited at",
    "cleaned",
    "painted",
    "visited",
    "left",
    "found",
]
TAKE_PAST = [
    "found",
    "bought",
    "carried",
    "lost",
    "made",
    "opened",
    "gave away",
    "sold",
    "picked up",
    "fixed",
    "wrote",
    "read",
]
TIMES = [
    "in the morning",
    "at noon",
    "in the evening",
    "at night",
    "on Monday",
    "on Sunday",
    "after lunch",
    "before dinner",
    "last week",
    "every day",
    "in the spring",
    "in the winter",
]
WEATHER = [
    "the sun was warm",
    "the rain was heavy",
    "the wind was cold",
    "the sky was clear",
    "the air was fresh",
    "the snow was deep",
    "the clouds were grey",
]
COLORS = {
    "sky": "blue",
    "grass": "green",
    "snow": "white",
    "sun": "yellow",
    "night": "dark",
    "apple": "red",
    "sea": "blue",
    "milk": "white",
    "coal": "black",
    "orange": "orange",
}
SOUNDS = {
    "dog": "barks",
    "cat": "meows",
    "bird": "sings",
    "duck": "quacks",
    "horse": "neighs",
    "cow": "moos",
    "goat": "bleats",
    "mouse": "squeaks",
    "bear": "growls",
    "fox": "yelps",
}
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

PRODUCTS = [
    "lamp",
    "kettle",
    "backpack",
    "jacket",
    "phone case",
    "chair",
    "blender",
    "speaker",
    "notebook",
    "pair of shoes",
    "toaster",
    "desk",
    "headset",
    "water bottle",
    "umbrella",
    "keyboard",
    "tent",
    "pillow",
    "camera",
    "watch",
]
ASPECTS = [
    "the design",
    "the price",
    "the quality",
    "the sound",
    "the battery",
    "the color",
    "the size",
    "the material",
    "the delivery",
    "the handle",
    "the screen",
    "the fabric",
]
POS_ADJ = [
    "great",
    "excellent",
    "wonderful",
    "lovely",
    "perfect",
    "solid",
    "amazing",
    "fantastic",
    "comfortable",
    "reliable",
    "beautiful",
    "sturdy",
]
NEG_ADJ = [
    "terrible",
    "awful",
    "poor",
    "cheap",
    "flimsy",
    "disappointing",
    "broken",
    "useless",
    "ugly",
    "noisy",
    "uncomfortable",
    "weak",
]
POS_VERDICT = [
    "I love it.",
    "I would buy it again.",
    "Highly recommended.",
    "Worth every penny.",
    "It made me very happy.",
    "Five stars from me.",
    "My family loves it too.",
    "I am glad I chose it.",
]
NEG_VERDICT = [
    "I hate it.",
    "I would not buy it again.",
    "Do not waste your money.",
    "I want a refund.",
    "It made me angry.",
    "One star from me.",
    "I am sending it back.",
    "I regret buying it.",
]
NEUTRAL_OPENERS = [
    "I bought this {p} {t}.",
    "My friend gave me this {p} {t}.",
    "I have used this {p} since {t2}.",
    "This {p} arrived {t}.",
    "We ordered the {p} {t}.",
    "I picked this {p} for my trip.",
]
REVIEW_TIMES = ["last week", "two days ago", "last month", "yesterday", "in the spring", "on Monday"]


def _pick(rng: random.Random, items):
    return items[rng.randrange(len(items))]


def story(rng: random.Random) -> str:
    """A few linked sentences about a person, a place and a thing."""
    name = _pick(rng, NAMES)
    pron = (
        "She" if name in {"Anna", "Clara", "Emma", "Grace", "Iris", "Lena", "Nina", "Paula", "Rosa", "Tara"} else "He"
    )
    adj, person, place = _pick(rng, ADJ), _pick(rng, PEOPLE), _pick(rng, PLACES)
    thing, time = _pick(rng, THINGS), _pick(rng, TIMES)
    sents = [
        f"{name} was a {adj} {person} who lived near the {place}.",
        f"{time.capitalize()}, {name} {_pick(rng, VERBS_PAST)} the {_pick(rng, PLACES)}.",
        f"{pron} {_pick(rng, TAKE_PAST)} a {_pick(rng, ADJ)} {thing} and {_pick(rng, TAKE_PAST)} {_pick(rng, NUMBERS[1:])} {_pick(rng, THINGS)}s.",
        f"{_pick(rng, WEATHER).capitalize()}, so {pron.lower()} stayed with the {_pick(rng, ANIMALS)}.",
        f"The {_pick(rng, ANIMALS)} looked at the {thing} and {pron.lower()} smiled.",
        f"Later {pron.lower()} met a {_pick(rng, ADJ)} {_pick(rng, PEOPLE)} at the {_pick(rng, PLACES)}.",
    ]
    return " ".join(sents[: 3 + rng.randrange(4)])


def _sentiment_sentence(rng: random.Random, positive: bool) -> str:
    aspect = _pick(rng, ASPECTS)
    if rng.random() < 0.2:  # negation: the surface word points the other way
        word = _pick(rng, NEG_ADJ if positive else POS_ADJ)
        return f"{aspect.capitalize()} is not {word} at all."
    word = _pick(rng, POS_ADJ if positive else NEG_ADJ)
    form = rng.randrange(3)
    if form == 0:
        return f"{aspect.capitalize()} is {word}."
    if form == 1:
        return f"I think {aspect} feels {word}."
    return f"{aspect.capitalize()} is really {word} and {_pick(rng, POS_ADJ if positive else NEG_ADJ)}."


def review(rng: random.Random, positive: bool) -> str:
    """A short product review whose sentiment is clear to a careful reader."""
    opener = _pick(rng, NEUTRAL_OPENERS).format(
        p=_pick(rng, PRODUCTS), t=_pick(rng, REVIEW_TIMES), t2=_pick(rng, REVIEW_TIMES)
    )
    body = [_sentiment_sentence(rng, positive) for _ in range(1 + rng.randrange(2))]
    parts = [opener, *body]
    if rng.random() < 0.7:
        parts.append(_pick(rng, POS_VERDICT if positive else NEG_VERDICT))
    return " ".join(parts)


VERDICTS = [
    "Overall, this review is {label}.",
    "The tone of this review is {label}.",
    "In short, the feeling here is {label}.",
]


def judged_review(rng: random.Random) -> str:
    """A review followed by a verdict sentence: the evaluative English a real base model has read.

    It teaches the words `positive`/`negative` in context, so prompt wording matters on the demo
    model; the task's own items and formats never appear in pre-training.
    """
    positive = rng.random() < 0.5
    verdict = _pick(rng, VERDICTS).format(label="positive" if positive else "negative")
    return f"{review(rng, positive)} {verdict}"


def question(rng: random.Random) -> tuple[str, str]:
    """A simple question with its answer, drawn from small fact tables."""
    kind = rng.randrange(3)
    if kind == 0:
        thing = _pick(rng, list(COLORS))
        return f"What color is the {thing}?", f"The {thing} is {COLORS[thing]}."
    if kind == 1:
        animal = _pick(rng, list(SOUNDS))
        return f"What does a {animal} do?", f"A {animal} {SOUNDS[animal]}."
    name, place = _pick(rng, NAMES), _pick(rng, PLACES)
    return f"Where did {name} go?", f"{name} went to the {place} {_pick(rng, TIMES)}."


def chat(rng: random.Random) -> list[dict[str, str]]:
    """A one-turn chat in the messages format the demo chat template renders."""
    if rng.random() < 0.5:
        q, a = question(rng)
    else:
        q, a = "Tell me a short story.", story(rng)
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def sentiment_items(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Balanced labelled reviews: the demo task that prompts and LoRA adapters compete on."""
    items = []
    for i in range(count):
        positive = i % 2 == 0
        items.append(
            {"id": f"s{i:04d}", "text": review(rng, positive), "label": "positive" if positive else "negative"}
        )
    rng.shuffle(items)
    return items


# In-context runs: a document of several labelled examples in a row, so the model learns to read the examples
# before an item, and so to use the demonstrations a k-shot prompt puts there. The cue and the label words are
# drawn per document (a label pair other than positive/negative can only be read off the examples).
CUES = [
    "Overall, this review is",
    "The tone of this review is",
    "In short, the feeling here is",
    "Sentiment:",
    "Label:",
    "This review is",
]
LABEL_PAIRS = [("positive", "negative")] * 4 + [
    ("good", "bad"),
    ("happy", "sad"),
    ("yes", "no"),
    ("great", "awful"),
    ("pos", "neg"),
]
SEPARATORS = ["\n\n", "\n\n", "\n", " "]


def labelled_run(rng: random.Random) -> str:
    """2 to 8 reviews, each followed by the document's cue and its label, joined by one separator."""
    cue, (pos_word, neg_word), sep = _pick(rng, CUES), _pick(rng, LABEL_PAIRS), _pick(rng, SEPARATORS)
    parts = []
    for _ in range(2 + rng.randrange(7)):
        positive = rng.random() < 0.5
        parts.append(f"{review(rng, positive)} {cue} {pos_word if positive else neg_word}")
    return sep.join(parts)


def labelled_chat(rng: random.Random) -> list[dict[str, str]]:
    """The same as alternating chat turns: a review (with or without a question), the label as the answer."""
    pos_word, neg_word = _pick(rng, LABEL_PAIRS)
    ask = _pick(rng, ["", " Is this review positive or negative?", " Sentiment?"])
    turns = []
    for _ in range(2 + rng.randrange(6)):
        positive = rng.random() < 0.5
        turns += [
            {"role": "user", "content": review(rng, positive) + ask},
            {"role": "assistant", "content": pos_word if positive else neg_word},
        ]
    return turns


def in_context(rng: random.Random) -> str:
    """One in-context document: a raw labelled run, a chat of labelled turns, or a run of Q/A pairs."""
    r = rng.random()
    if r < 0.6:
        return labelled_run(rng)
    if r < 0.85:
        return "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in labelled_chat(rng))
    return "\n".join("Q: {}\nA: {}".format(*question(rng)) for _ in range(2 + rng.randrange(5)))
