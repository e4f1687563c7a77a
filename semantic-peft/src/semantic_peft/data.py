"""Knowledge data: facts, loaders for ZsRE (MEND), CounterFact (EasyEdit), JSONL and hub ids,
and the tokenisation shared by training, measurement and evaluation.

A fact is ``(prompt, target, paraphrases, unrelated probes)``. The model learns the
continuation ``prompt + " " + target``; only the target tokens are supervised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from shared_utils.errors import RecordError
from shared_utils.records import parse_records, read_records, require_local


@dataclass
class Probe:
    """A prompt and its expected answer (a paraphrase or an unrelated locality probe)."""

    prompt: str
    target: str


@dataclass
class Fact:
    prompt: str
    target: str
    paraphrases: list[str] = field(default_factory=list)
    unrelated: list[Probe] = field(default_factory=list)
    neighbourhood: list[Probe] = field(default_factory=list)  # same template, another subject
    subject: str | None = None
    relation: str | None = None
    fact_id: str | None = None


def _text(record: dict[str, Any], key: str, index: int, source: str, required: bool = True) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{source}: record {index} field {key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _texts(record: dict[str, Any], key: str, index: int, source: str) -> list[str]:
    value = record.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RecordError(
            f"{source}: record {index} field {key!r} must be a string or a list of non-empty strings, got {value!r}"
        )
    return [v.strip() for v in value]


def fact_from_zsre(record: dict[str, Any], index: int, source: str = "zsre") -> Fact:
    """MEND ZsRE: learn ``alt`` for ``src``; ``rephrase`` is the paraphrase, ``loc``/``loc_ans`` unrelated."""
    unrelated = []
    loc = _text(record, "loc", index, source, required=False)
    if loc is not None:
        unrelated.append(Probe(loc.removeprefix("nq question: "), _text(record, "loc_ans", index, source)))
    return Fact(
        prompt=_text(record, "src", index, source),
        target=_text(record, "alt", index, source),
        paraphrases=_texts(record, "rephrase", index, source),
        unrelated=unrelated,
        subject=_text(record, "subject", index, source, required=False),
        relation="zsre",
        fact_id=f"zsre-{index}",
    )


def fact_from_counterfact(record: dict[str, Any], index: int, source: str = "counterfact") -> Fact:
    """EasyEdit CounterFact: learn ``target_new`` for ``prompt``; the locality prompt / ground truth
    (a CounterFact neighbourhood prompt: same relation, another subject) is a neighbourhood probe."""
    neighbourhood = []
    loc = _text(record, "locality_prompt", index, source, required=False)
    if loc is not None:
        neighbourhood.append(Probe(loc, _text(record, "locality_ground_truth", index, source)))
    return Fact(
        prompt=_text(record, "prompt", index, source),
        target=_text(record, "target_new", index, source),
        paraphrases=_texts(record, "rephrase_prompt", index, source),
        neighbourhood=neighbourhood,
        subject=_text(record, "subject", index, source, required=False),
        relation="counterfact",
        fact_id=str(record.get("case_id", f"counterfact-{index}")),
    )


def _probes(record: dict[str, Any], key: str, index: int, source: str) -> list[Probe]:
    """A list of ``{"prompt", "target"}`` objects under ``key`` (absent = none)."""
    raw = record.get(key) or []
    if not isinstance(raw, list):
        raise RecordError(f"{source}: record {index} field {key!r} must be a list, got {raw!r}")
    probes = []
    for j, probe in enumerate(raw):
        if not isinstance(probe, dict):
            raise RecordError(f"{source}: record {index} field '{key}[{j}]' must be an object, got {probe!r}")
        probes.append(
            Probe(
                _text(probe, "prompt", index, f"{source} {key}[{j}]"),
                _text(probe, "target", index, f"{source} {key}[{j}]"),
            )
        )
    return probes


def fact_from_jsonl(record: dict[str, Any], index: int, source: str = "jsonl") -> Fact:
    """Generic schema: ``prompt``, ``target``, optional ``paraphrases``, ``unrelated`` and
    ``neighbourhood`` (lists of ``{"prompt", "target"}``), ``subject``, ``relation``, ``id``."""
    return Fact(
        prompt=_text(record, "prompt", index, source),
        target=_text(record, "target", index, source),
        paraphrases=_texts(record, "paraphrases", index, source),
        unrelated=_probes(record, "unrelated", index, source),
        neighbourhood=_probes(record, "neighbourhood", index, source),
        subject=_text(record, "subject", index, source, required=False),
        relation=_text(record, "relation", index, source, required=False),
        fact_id=str(record.get("id", f"fact-{index}")),
    )


PARSERS = {"zsre": fact_from_zsre, "counterfact": fact_from_counterfact, "jsonl": fact_from_jsonl}


def detect_format(record: Any, source: str = "data") -> str:
    if not isinstance(record, dict):
        raise RecordError(f"{source}: record 0 must be a JSON object, got {type(record).__name__}")
    if {"src", "alt"} <= record.keys():
        return "zsre"
    if {"prompt", "target_new"} <= record.keys():
        return "counterfact"
    if {"prompt", "target"} <= record.keys():
        return "jsonl"
    raise RecordError(
        f"{source}: record 0 matches no known schema (keys {sorted(record)}); expected ZsRE (src, alt), "
        "CounterFact (prompt, target_new) or generic (prompt, target)"
    )


def parse_facts(records: list[Any], fmt: str = "auto", source: str = "data", skip_invalid: bool = False) -> list[Fact]:
    """Facts from raw records; a non-object record or a bad field raises :class:`RecordError` naming it.

    With ``skip_invalid`` such records are left out instead, with one warning that names each
    of them and their count (the MEND ZsRE eval split, for one, has records with an empty ``alt``).
    """
    if not records:
        raise RecordError(f"{source}: no records")
    parser = PARSERS[detect_format(records[0], source) if fmt == "auto" else fmt]

    def parse(record: Any, index: int) -> Fact:
        if not isinstance(record, dict):
            raise RecordError(f"{source}: record {index} must be a JSON object, got {type(record).__name__}")
        return parser(record, index, source)

    return parse_records(records, parse, source, skip_invalid)


def load_facts(
    source: str = "builtin",
    fmt: str = "auto",
    split: str = "train",
    max_facts: int | None = None,
    builtin_per_relation: int = 25,
    builtin_seed: int = 0,
    skip_invalid: bool = False,
) -> list[Fact]:
    """Facts from ``builtin``, a local ``.json``/``.jsonl`` file, or a hub dataset id (via ``datasets``).

    A source that looks like a path but does not exist is an error, never a hub lookup.
    """
    if source == "builtin":
        from semantic_peft.builtin_facts import builtin_facts

        facts = builtin_facts(builtin_per_relation, builtin_seed)
    elif (path := require_local(source)) is not None:
        facts = parse_facts(read_records(path), fmt, str(path), skip_invalid)
    else:
        from datasets import load_dataset

        facts = parse_facts(list(load_dataset(source, split=split)), fmt, f"{source}[{split}]", skip_invalid)
    return facts[:max_facts] if max_facts else facts


# ----------------------------------------------------------------------------- tokenisation


@dataclass
class Encoded:
    """Right-padded ``prompt + target`` sequences; ``labels`` are -100 outside the target."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    prompt_lengths: torch.Tensor  # index of the first target token
    target_ids: list[list[int]]

    def to(self, device: Any) -> Encoded:
        return Encoded(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.labels.to(device),
            self.prompt_lengths.to(device),
            self.target_ids,
        )

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def target_token_ids(tokenizer: Any, target: str) -> list[int]:
    """Target tokens as continued after a prompt: a leading space, no special tokens."""
    return tokenizer(" " + target, add_special_tokens=False)["input_ids"]


def encode_pairs(tokenizer: Any, pairs: list[tuple[str, str | list[int]]], append_eos: bool = False) -> Encoded:
    """Tokenise ``(prompt, target)`` pairs, right-padded (so no real token attends to padding).

    A target given as token ids (e.g. a model's greedy continuation) is used as it is."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows, labels, prompt_lengths, targets = [], [], [], []
    for i, (prompt, target) in enumerate(pairs):
        prompt_ids = tokenizer(prompt)["input_ids"]
        target_ids = list(target) if isinstance(target, list) else target_token_ids(tokenizer, target)
        if not prompt_ids or not target_ids:
            raise RecordError(f"pair {i}: prompt {prompt!r} or target {target!r} tokenises to nothing")
        supervised = target_ids + ([tokenizer.eos_token_id] if append_eos else [])
        rows.append(prompt_ids + supervised)
        labels.append([-100] * len(prompt_ids) + supervised)
        prompt_lengths.append(len(prompt_ids))
        targets.append(target_ids)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    label_tensor = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, labels)):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        label_tensor[i, : len(label)] = torch.tensor(label)
    return Encoded(input_ids, attention, label_tensor, torch.tensor(prompt_lengths), targets)


def fact_pairs(facts: list[Fact]) -> list[tuple[str, str]]:
    return [(f.prompt, f.target) for f in facts]


def paraphrase_pairs(facts: list[Fact], max_paraphrases: int = 2) -> tuple[list[tuple[str, str]], list[int]]:
    """All paraphrase probes and, for each, the index of its fact."""
    pairs, owners = [], []
    for i, fact in enumerate(facts):
        for paraphrase in fact.paraphrases[:max_paraphrases]:
            pairs.append((paraphrase, fact.target))
            owners.append(i)
    return pairs, owners


PROBE_KINDS = ("unrelated", "neighbourhood")


def probe_pairs(facts: list[Fact], kind: str = "unrelated") -> list[tuple[str, str]]:
    """The locality probes of one kind (``unrelated`` or ``neighbourhood``) of all facts,
    de-duplicated, in first-seen order."""
    if kind not in PROBE_KINDS:
        raise ValueError(f"probe kind must be one of {PROBE_KINDS}, got {kind!r}")
    seen: dict[tuple[str, str], None] = {}
    for fact in facts:
        for probe in getattr(fact, kind):
            seen.setdefault((probe.prompt, probe.target), None)
    return list(seen)


def drift_probe_pairs(
    trained: list[Fact], facts: list[Fact], max_paraphrases: int = 2
) -> dict[str, list[tuple[str, str]]]:
    """The probe sets whose distance drift is followed: the paraphrases of the ``trained``
    facts, and the unrelated and neighbourhood probes (with their answers) of all ``facts``."""
    sets = {"paraphrase": paraphrase_pairs(trained, max_paraphrases)[0]}
    sets.update({kind: probe_pairs(facts, kind) for kind in PROBE_KINDS})
    return {name: pairs for name, pairs in sets.items() if pairs}
