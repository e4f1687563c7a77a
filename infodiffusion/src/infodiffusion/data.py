"""DiffuSeq JSONL data ({"src": ..., "trg": ...}), tokenisation and packing.

A sequence is ``[CLS] src [SEP] trg [SEP] [PAD]...`` of fixed length; ``target_mask`` is 1
from the position after the first [SEP] to the end (DiffuSeq's ``input_mask``): those are
the positions that are noised and generated, pads included (they encode the length).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch

from infodiffusion.builtin import builtin_pairs
from shared_utils.errors import ConfigError
from shared_utils.records import RecordError, parse_records, read_records, require_local


class DataError(RecordError):
    """A malformed record or a data set that cannot be read; the message names the file and record."""


def _check_record(record, where: str) -> dict[str, str]:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with 'src' and 'trg', got {type(record).__name__}")
    for key in ("src", "trg"):
        if key not in record:
            raise DataError(f"{where}: missing field {key!r}")
        if not isinstance(record[key], str):
            raise DataError(f"{where}: field {key!r} must be a string, got {type(record[key]).__name__}")
    return {"src": record["src"], "trg": record["trg"]}


def read_pairs(path: str | Path, limit: int = 0) -> list[dict[str, str]]:
    """The ``{"src", "trg"}`` records of a DiffuSeq ``.jsonl`` file (or a JSON array), validated.

    Errors name the file and the line (JSON Lines) or record index (JSON array).
    """
    path = Path(path)
    unit = "line" if path.suffix == ".jsonl" else "record"
    raws = read_records(path, limit)
    if unit == "line":  # read_records skips blank lines: number the records by their line
        lines = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    else:
        lines = list(range(1, len(raws) + 1))
    return parse_records(raws, lambda raw, i: _check_record(raw, f"{path} {unit} {lines[i]}"), str(path))


def parse_split(split: str) -> list[tuple[str, int | None, int | None]]:
    """``"valid+test[:2000]"`` -> ``[("valid", None, None), ("test", None, 2000)]``: splits joined
    by ``+``, each optionally sliced ``[start:stop]`` (record indices, Python slice rules)."""
    parts = []
    for part in split.split("+"):
        match = _SPLIT.fullmatch(part.strip())
        if match is None:
            raise ConfigError(
                f"split {split!r} (data.train_split / data.eval_split): expected name or name[start:stop] "
                f"joined by '+', got {part!r}"
            )
        name, start, stop = match.group("name", "start", "stop")
        parts.append((name, int(start) if start else None, int(stop) if stop else None))
    return parts


_SPLIT = re.compile(r"(?P<name>[\w.-]+)(?:\[(?P<start>-?\d*):(?P<stop>-?\d*)\])?")


def load_pairs(dataset: str, split: str, limit: int = 0) -> list[dict[str, str]]:
    """The records of ``split`` (see :func:`parse_split`, e.g. ``valid+test[:2000]``) of ``builtin``,
    a local ``.jsonl`` file or folder with ``<split>*.jsonl``, or a hub id (``datasets``); at most
    ``limit`` of them (0: all).

    A local path that does not exist is an error; it is never looked up on the Hub.
    """
    parts = parse_split(split)
    if len(parts) == 1 and parts[0][1:] == (None, None):
        return _load_split(dataset, parts[0][0], limit)
    pairs = [pair for name, start, stop in parts for pair in _load_split(dataset, name)[start:stop]]
    return pairs[:limit] if limit else pairs


def _load_split(dataset: str, split: str, limit: int = 0) -> list[dict[str, str]]:
    if dataset == "builtin":
        pairs = builtin_pairs(split)
        return pairs[:limit] if limit else pairs
    local = require_local(dataset, "data.dataset")
    if local is not None and local.is_file():
        return read_pairs(local, limit)
    if local is not None:
        exact = local / f"{split}.jsonl"
        matches = [exact] if exact.is_file() else sorted(local.glob(f"{split}*.jsonl"))
        if not matches:
            raise DataError(f"data.dataset {local}: no {split}.jsonl (or {split}*.jsonl) for split {split!r}")
        return read_pairs(matches[0], limit)
    try:
        hub = datasets.load_dataset(dataset, split=split, streaming=True)
    except (OSError, ValueError) as err:  # not found, offline, no such split
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"data.dataset {dataset!r}: no such local path, and not loadable as a hub id ({first_line})"
        ) from None
    records = []
    for i, record in enumerate(hub):
        records.append(_check_record(record, f"{dataset}[{split}] record {i}"))
        if limit and len(records) >= limit:
            break
    return records


@dataclass
class VocabMap:
    """Full tokenizer ids <-> compact ids of the tokens the model can emit."""

    full_ids: list[int]
    pad: int
    cls: int
    sep: int
    unk: int

    @classmethod
    def build(cls, tokenizer, token_lists=None, restrict: bool = True) -> VocabMap:
        specials = [tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id]
        if None in specials:
            raise ConfigError("data.tokenizer: the tokenizer needs pad, cls, sep and unk tokens")
        if restrict:
            seen = set()
            for tokens in token_lists or []:
                seen.update(tokens)
            full = list(dict.fromkeys(specials + sorted(seen - set(specials))))
        else:
            full = list(range(len(tokenizer)))
        index = {f: i for i, f in enumerate(full)}
        return cls(full, *(index[s] for s in specials))

    def __post_init__(self):
        self._index = {f: i for i, f in enumerate(self.full_ids)}

    def __len__(self) -> int:
        return len(self.full_ids)

    @property
    def special_ids(self) -> list[int]:
        return [self.pad, self.cls, self.sep]

    def to_compact(self, tokens: list[int]) -> list[int]:
        return [self._index.get(t, self.unk) for t in tokens]

    def to_full(self, ids: list[int]) -> list[int]:
        return [self.full_ids[i] for i in ids]

    def state_dict(self) -> dict:
        return {"full_ids": self.full_ids, "pad": self.pad, "cls": self.cls, "sep": self.sep, "unk": self.unk}


def tokenize_pairs(pairs: list[dict[str, str]], tokenizer) -> datasets.Dataset:
    """``datasets.map`` tokenisation (batched) into full-vocabulary ``src_tok``/``trg_tok``."""

    def encode(batch):
        src = tokenizer(batch["src"], add_special_tokens=False)["input_ids"]
        trg = tokenizer(batch["trg"], add_special_tokens=False)["input_ids"]
        return {"src_tok": src, "trg_tok": trg}

    return datasets.Dataset.from_list(pairs).map(encode, batched=True, desc="tokenise")


def pack(src: list[int], trg: list[int], vocab: VocabMap, seq_len: int) -> tuple[list[int], list[int]]:
    """``[CLS] src [SEP] trg [SEP] pad...`` in compact ids and its target mask (the longer side is cut)."""
    src, trg = vocab.to_compact(src), vocab.to_compact(trg)
    while len(src) + len(trg) + 3 > seq_len:
        if len(src) >= len(trg):
            src = src[:-1]
        else:
            trg = trg[:-1]
    head = [vocab.cls, *src, vocab.sep]
    tail = [*trg, vocab.sep]
    ids = head + tail + [vocab.pad] * (seq_len - len(head) - len(tail))
    return ids, [0] * len(head) + [1] * (seq_len - len(head))


def pack_dataset(tokenized: datasets.Dataset, vocab: VocabMap, seq_len: int) -> datasets.Dataset:
    if seq_len < 6:
        raise ConfigError(f"data.seq_len must be at least 6, got {seq_len}")

    def encode(batch):
        out = [pack(s, t, vocab, seq_len) for s, t in zip(batch["src_tok"], batch["trg_tok"])]
        return {"input_ids": [o[0] for o in out], "target_mask": [o[1] for o in out]}

    return tokenized.map(encode, batched=True, desc="pack")


def as_tensors(packed: datasets.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(packed["input_ids"], dtype=torch.long), torch.tensor(packed["target_mask"], dtype=torch.long)


def target_tokens(packed_ids: torch.Tensor, target_mask: torch.Tensor) -> list[list[int]]:
    """Compact ids at target positions of each row (for the information counts)."""
    return [row[m.bool()].tolist() for row, m in zip(packed_ids, target_mask)]


def word_normaliser(tokenizer):
    """``text -> text`` with the tokenizer's own normalisation and pre-tokenisation (lower-casing,
    accents, punctuation split off), joined by spaces: what :func:`decode` gives for words the
    model can emit, applied to raw text without the vocabulary, so no word is ever dropped."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda text: " ".join(text.split())

    def normalise(text: str) -> str:
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        if backend.pre_tokenizer is None:
            return " ".join(text.split())
        return " ".join(word for word, _ in backend.pre_tokenizer.pre_tokenize_str(text))

    return normalise


def oov_counts(texts: list[str], tokenizer, vocab: VocabMap) -> list[tuple[int, int]]:
    """(tokens outside the model's vocabulary, tokens) per text: the tokenizer's [UNK] and,
    with ``data.restrict_vocab``, every token not seen in training."""
    unk = tokenizer.unk_token_id
    out = []
    for tokens in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        out.append((sum(t == unk or t not in vocab._index for t in tokens), len(tokens)))
    return out


def decode(ids: torch.Tensor, target_mask: torch.Tensor, vocab: VocabMap, tokenizer) -> list[str]:
    """Text of the target positions (special tokens dropped as DiffuSeq does; WordPieces joined,
    punctuation left space-separated so that whitespace-split metrics see it as words)."""
    specials = set(tokenizer.all_special_ids)
    texts = []
    for row, m in zip(ids.tolist(), target_mask.tolist()):
        full = vocab.to_full([i for i, keep in zip(row, m) if keep])
        tokens = [tok for tok, i in zip(tokenizer.convert_ids_to_tokens(full), full) if i not in specials]
        texts.append(" ".join(tokens).replace(" ##", "").strip())
    return texts
