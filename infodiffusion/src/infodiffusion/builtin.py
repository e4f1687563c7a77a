"""A small built-in seq2seq set: deterministic sentence transformations with content slots.

Each pair rewrites a templated sentence (active ↔ passive, fronted time or place) so the
target is a function of the source: content words (names, objects, places, days) must be
carried over and reordered, function words follow the template. Content words are rare and
function words frequent, which is the contrast the information schedule is built on.
"""

from __future__ import annotations

import random

from shared_utils.errors import ConfigError

NAMES = [
    "alice",
    "bob",
    "carol",
    "david",
    "emma",
    "frank",
    "grace",
    "henry",
    "jack",
    "kate",
    "laura",
    "mark",
    "nina",
    "oscar",
    "paul",
    "rachel",
    "sam",
    "tom",
    "victor",
    "anna",
    "peter",
    "maria",
    "john",
    "lucy",
]
VERBS = [
    ("bought", "bought"),
    ("painted", "painted"),
    ("found", "found"),
    ("sold", "sold"),
    ("built", "built"),
    ("cleaned", "cleaned"),
    ("fixed", "fixed"),
    ("washed", "washed"),
    ("moved", "moved"),
    ("opened", "opened"),
    ("took", "taken"),
    ("saw", "seen"),
    ("stole", "stolen"),
    ("drew", "drawn"),
    ("broke", "broken"),
    ("hid", "hidden"),
    ("gave", "given"),
    ("wrote", "written"),
]
ADJECTIVES = ["red", "blue", "green", "yellow", "black", "white", "old", "new", "small", "big", "heavy", "cheap"]
OBJECTS = [
    "car",
    "house",
    "chair",
    "table",
    "box",
    "door",
    "boat",
    "bike",
    "book",
    "lamp",
    "window",
    "clock",
    "bag",
    "hat",
    "desk",
    "piano",
    "letter",
    "map",
]
PLACES = [
    "paris",
    "london",
    "tokyo",
    "berlin",
    "rome",
    "madrid",
    "boston",
    "chicago",
    "dublin",
    "vienna",
    "oslo",
    "cairo",
    "lima",
    "sydney",
]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

TEMPLATES = [
    (
        "{name} {verb} the {adj} {obj} in {place} on {day} .",
        "on {day} , the {adj} {obj} was {pp} by {name} in {place} .",
    ),
    ("the {adj} {obj} was {pp} by {name} in {place} .", "in {place} , {name} {verb} the {adj} {obj} ."),
    ("on {day} {name} {verb} the {obj} .", "the {obj} was {pp} by {name} on {day} ."),
]


def builtin_pairs(
    split: str, n_train: int = 4000, n_valid: int = 200, n_test: int = 200, seed: int = 1234
) -> list[dict[str, str]]:
    """Deterministic pairs; the splits have disjoint sources."""
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    if split not in sizes:
        raise ConfigError(
            f"data.dataset builtin has splits {sorted(sizes)}, not {split!r} (data.train_split / data.eval_split)"
        )
    rng = random.Random(seed)
    seen: set[str] = set()
    out: dict[str, list[dict[str, str]]] = {k: [] for k in sizes}
    for name in ("test", "valid", "train"):
        while len(out[name]) < sizes[name]:
            src_t, trg_t = TEMPLATES[rng.randrange(len(TEMPLATES))]
            verb, pp = rng.choice(VERBS)
            slots = {
                "name": rng.choice(NAMES),
                "verb": verb,
                "pp": pp,
                "adj": rng.choice(ADJECTIVES),
                "obj": rng.choice(OBJECTS),
                "place": rng.choice(PLACES),
                "day": rng.choice(DAYS),
            }
            src = src_t.format(**slots)
            if src in seen:
                continue
            seen.add(src)
            out[name].append({"src": src, "trg": trg_t.format(**slots)})
    return out[split]
