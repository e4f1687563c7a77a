"""The package's own small instruction set (written for this package): short everyday instructions
from a few templates and word lists, deterministically shuffled. It has no references: the teacher's
greedy answers become the training targets (sequence-level KD data) and the held-out references."""

from __future__ import annotations

import random

from shared_utils.errors import ConfigError

COUNTRIES = [
    "France",
    "Germany",
    "Italy",
    "Spain",
    "Japan",
    "China",
    "Canada",
    "Brazil",
    "Egypt",
    "India",
    "Russia",
    "Mexico",
    "Greece",
    "Portugal",
    "Norway",
    "Sweden",
    "Kenya",
    "Peru",
    "Chile",
    "Turkey",
    "Poland",
    "Ireland",
    "Austria",
    "Thailand",
    "Argentina",
    "Australia",
    "Cuba",
    "Belgium",
]
ANIMALS = [
    "dog",
    "cat",
    "cow",
    "horse",
    "lion",
    "duck",
    "sheep",
    "owl",
    "frog",
    "pig",
    "goat",
    "wolf",
    "elephant",
    "bee",
    "snake",
    "mouse",
    "donkey",
    "chicken",
    "tiger",
    "monkey",
]
OBJECTS = [
    "a bicycle",
    "a refrigerator",
    "a telescope",
    "a library",
    "a volcano",
    "a passport",
    "a bridge",
    "a battery",
    "a calendar",
    "an umbrella",
    "a microscope",
    "a compass",
    "a thermometer",
    "a piano",
    "a vaccine",
    "a satellite",
    "a recipe",
    "a dictionary",
    "a lighthouse",
    "a museum",
]
WORDS = [
    "hot",
    "big",
    "happy",
    "fast",
    "light",
    "early",
    "open",
    "strong",
    "rich",
    "young",
    "loud",
    "hard",
    "wet",
    "full",
    "high",
    "clean",
    "empty",
    "thin",
    "brave",
    "simple",
]
TOPICS = [
    "fruits",
    "vegetables",
    "colors",
    "planets",
    "musical instruments",
    "sports",
    "kitchen tools",
    "farm animals",
    "countries in Europe",
    "things found in a classroom",
    "types of weather",
    "ways to save water",
    "healthy breakfast foods",
    "board games",
    "birds",
    "tips for better sleep",
    "things to pack for a beach trip",
    "programming languages",
    "ocean animals",
    "winter clothes",
]
SENTENCES = [
    "The cat sleeps on the sofa.",
    "We walk to school every day.",
    "She writes a letter to her friend.",
    "They play football in the park.",
    "I drink a cup of tea.",
    "The sun rises in the east.",
    "He reads a book before bed.",
    "The children sing a song.",
    "We cook dinner together.",
    "The train leaves at noon.",
    "My brother fixes the bike.",
    "The bird builds a nest.",
    "She paints the old fence.",
    "They watch a movie tonight.",
    "The dog chases the ball.",
]
REVIEWS = [
    "I loved this movie, the acting was wonderful.",
    "The food was cold and the service was slow.",
    "What a fantastic day at the beach!",
    "This phone broke after two days.",
    "The hotel room was clean and quiet.",
    "I will never buy from this store again.",
    "The concert was amazing and the crowd was friendly.",
    "The book was boring and far too long.",
    "Our teacher explains everything very clearly.",
    "The traffic this morning was terrible.",
]


def _instructions() -> list[dict[str, str]]:
    rng = random.Random(1234)
    items: list[dict[str, str]] = []
    add = lambda instruction, input_text="": items.append({"instruction": instruction, "input": input_text})  # noqa: E731
    for country in COUNTRIES:
        add(f"What is the capital of {country}?")
        add(f"Name one famous food from {country}.")
    for animal in ANIMALS:
        add(f"What sound does a {animal} make?")
        add(f"Describe a {animal} in one sentence.")
    for obj in OBJECTS:
        add(f"Explain in one sentence what {obj} is used for.")
    for word in WORDS:
        add(f'What is the opposite of the word "{word}"?')
        add(f'Write a short sentence using the word "{word}".')
    for topic in TOPICS:
        add(f"List three {topic}.")
    for sentence in SENTENCES:
        add("Rewrite the sentence in the past tense.", sentence)
        add("Translate the sentence into French.", sentence)
    for review in REVIEWS:
        add("Is the sentiment of this review positive or negative?", review)
    for _ in range(40):
        a, b = rng.randint(2, 50), rng.randint(2, 50)
        add(f"What is {a} plus {b}?")
    for _ in range(20):
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        add(f"What is {a} times {b}?")
    unique = {(r["instruction"], r["input"]): r for r in items}  # drop repeated random sums/products
    return list(unique.values())


def builtin_instructions(seed: int = 0) -> list[dict[str, str]]:
    """All built-in records (``instruction``, ``input``), shuffled by ``seed``."""
    items = _instructions()
    random.Random(seed).shuffle(items)
    return items


def builtin_split(train_size: int, eval_size: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Disjoint train / held-out splits of the built-in set."""
    items = builtin_instructions(seed)
    if train_size + eval_size > len(items):
        raise ConfigError(
            f"data.builtin_train_size + builtin_eval_size = {train_size + eval_size} exceeds the "
            f"{len(items)} built-in instructions"
        )
    return items[:train_size], items[train_size : train_size + eval_size]
