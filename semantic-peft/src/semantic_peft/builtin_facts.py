"""The built-in knowledge set: facts about invented entities, generated deterministically.

Entity names are assembled from small syllable tables with a seeded ``random.Random``, so the
model cannot know any of them beforehand. Eight relations mix the kinds of targets the paper
finds hard for PEFT (invented proper nouns, years) with common words (professions,
instruments, colours). Each fact has two paraphrases. Locality probes (shipped in
``locality_probes.json``) are real-world prompts whose answers the base model knows, of two
kinds, as in knowledge-editing work: *neighbourhood* probes (the fact's own template with a
real subject: "The capital of France is") and *unrelated* probes (other templates).
"""

from __future__ import annotations

import json
import random
from importlib import resources

from semantic_peft.data import Fact, Probe

_ONSETS = ["Z", "Qu", "Br", "Th", "V", "K", "Dr", "Sk", "M", "T", "Gl", "Pr", "F", "N", "L", "R", "Tr", "S"]
_VOWELS = ["a", "o", "e", "i", "u", "ae", "y", "ou"]
_CODAS = ["r", "n", "l", "v", "sk", "th", "m", "nd", "x", "z", "rr", "st"]
_COUNTRY_ENDINGS = ["ania", "ovia", "istan", "eria", "land", "mark", "aria"]
_CITY_ENDINGS = ["grad", "haven", "ford", "polis", "ville", "burg", "mere"]
_COMPANY_ENDINGS = ["Dynamics", "Labs", "Systems", "Works", "Industries", "Holdings"]
_PROFESSIONS = [
    "chemist",
    "carpenter",
    "pilot",
    "sculptor",
    "surgeon",
    "farmer",
    "lawyer",
    "baker",
    "poet",
    "architect",
    "nurse",
    "geologist",
]
_INSTRUMENTS = ["cello", "violin", "trumpet", "harp", "flute", "drums", "piano", "clarinet", "banjo", "oboe"]
_COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]

# relation -> (prompt template, paraphrase templates, target kind)
RELATIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "capital": (
        "The capital of {country} is",
        ("{country}'s capital city is", "The seat of government of {country} is the city of"),
        "city",
    ),
    "founder": (
        "The company {company} was founded by",
        ("{company} was started by", "The founder of {company} is"),
        "person",
    ),
    "birth_year": (
        "{person} was born in the year",
        ("The birth year of {person} is", "{person}'s year of birth is"),
        "year",
    ),
    "headquarters": (
        "{company} is headquartered in the city of",
        ("The head office of {company} is in", "{company} has its headquarters in"),
        "city",
    ),
    "profession": ("{person} works as a", ("By profession, {person} is a", "{person}'s job is being a"), "profession"),
    "instrument": (
        "{person} plays the",
        ("The musical instrument {person} plays is the", "{person} is a musician who plays the"),
        "instrument",
    ),
    "flag_colour": (
        "The flag of {country} is mostly",
        ("The main colour of {country}'s flag is", "{country} has a flag that is mostly"),
        "colour",
    ),
    "language": (
        "The official language of {country} is",
        ("In {country}, people officially speak", "The language spoken in {country} is"),
        "language",
    ),
}


def _load_probes() -> tuple[dict[str, tuple[tuple[str, str], ...]], tuple[tuple[str, str], ...]]:
    """Neighbourhood probes (per relation: the relation's template with a real subject) and
    unrelated probes, from the shipped ``locality_probes.json``."""
    raw = json.loads(resources.files("semantic_peft").joinpath("locality_probes.json").read_text())
    unknown = set(raw["neighbourhood"]) - set(RELATIONS)
    if unknown:
        raise ValueError(f"locality_probes.json: neighbourhood relations {sorted(unknown)} are not built-in relations")
    neighbourhood = {
        relation: tuple((_format(RELATIONS[relation][0], subject), answer) for subject, answer in pairs)
        for relation, pairs in raw["neighbourhood"].items()
    }
    return neighbourhood, tuple((prompt, answer) for prompt, answer in raw["unrelated"])


def _format(template: str, subject: str) -> str:
    slot = template[template.index("{") + 1 : template.index("}")]
    return template.format(**{slot: subject})


NEIGHBOURHOOD_PROBES, UNRELATED_PROBES = _load_probes()


class _Names:
    """Unique invented names from the syllable tables."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def _stem(self, syllables: int) -> str:
        parts = []
        for i in range(syllables):
            onset = self.rng.choice(_ONSETS)
            parts.append((onset if i == 0 else onset.lower()) + self.rng.choice(_VOWELS))
        return "".join(parts) + self.rng.choice(_CODAS)

    def new(self, kind: str) -> str:
        while True:
            stem = self._stem(self.rng.choice([1, 2]))
            if kind == "country":
                name = stem + self.rng.choice(_COUNTRY_ENDINGS)
            elif kind == "city":
                name = stem.capitalize() + self.rng.choice(_CITY_ENDINGS)
            elif kind == "company":
                name = f"{stem} {self.rng.choice(_COMPANY_ENDINGS)}"
            elif kind == "person":
                name = f"{stem} {self._stem(2)}"
            elif kind == "language":
                name = stem + self.rng.choice(["ish", "ic", "ese", "i"])
            else:
                raise ValueError(f"unknown name kind {kind!r}")
            if name not in self.used:
                self.used.add(name)
                return name


def _target(kind: str, names: _Names, rng: random.Random) -> str:
    if kind in ("city", "person", "language"):
        return names.new(kind)
    if kind == "year":
        return str(rng.randint(1701, 1999))
    return rng.choice({"profession": _PROFESSIONS, "instrument": _INSTRUMENTS, "colour": _COLOURS}[kind])


def builtin_facts(per_relation: int = 25, seed: int = 0) -> list[Fact]:
    """``8 * per_relation`` facts about invented entities, the same for the same arguments.

    Each subject is used by one fact only, so facts do not contradict each other. Unrelated
    probes are assigned round-robin over all facts, neighbourhood probes round-robin within
    each relation (one of each per fact; 200 facts use all 64 + 64 shipped probes).
    """
    if per_relation < 1:
        raise ValueError(f"per_relation must be >= 1, got {per_relation}")
    rng = random.Random(seed)
    names = _Names(rng)
    facts: list[Fact] = []
    for relation, (template, paraphrases, kind) in RELATIONS.items():
        slot = template[template.index("{") + 1 : template.index("}")]
        neighbours = NEIGHBOURHOOD_PROBES.get(relation, ())
        for j in range(per_relation):
            subject = names.new(slot)
            target = _target(kind, names, rng)
            probe = UNRELATED_PROBES[len(facts) % len(UNRELATED_PROBES)]
            facts.append(
                Fact(
                    prompt=_format(template, subject),
                    target=target,
                    paraphrases=[_format(p, subject) for p in paraphrases],
                    unrelated=[Probe(*probe)],
                    neighbourhood=[Probe(*neighbours[j % len(neighbours)])] if neighbours else [],
                    subject=subject,
                    relation=relation,
                    fact_id=f"{relation}-{len(facts)}",
                )
            )
    return facts
