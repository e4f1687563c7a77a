"""Subject mentions (a heuristic): which stored edit subject string a prompt names, and where.

Two LEMoE options read the subject of an edit (ZsRE and CounterFact records carry one):

- ``router.pooling = 'subject'`` (the paper's "entity-level" value): the routing value ē is the
  mean input embedding over the subject span of the prompt instead of the whole prompt.
- ``router.null_threshold = 'subject'``: no expert fires on a prompt that names no edited subject.

At inference nobody passes a subject, so the span is found by looking the prompt up in the
subjects of the edits made so far. The match is on characters, not token ids: the prompt's tokens
are decoded one by one, and prompt and subject are compared case-folded, every run of characters
other than letters and digits read as one word break ("Saint-Denis", "SAINT DENIS" and "saint
denis" are one subject; "USS Leedstown (APA-56)?" names "USS Leedstown (APA-56)" whatever the
tokeniser merged the ")?" into), at word boundaries (a subject "Ur" is not named by "your"). Every
token that overlaps the matched characters is in the span. Training and inference use the same
lookup, so a prompt gets the same value with or without its target appended. Still a heuristic: a
misspelled or abbreviated subject is missed, and a prompt naming the subject for another relation
is matched.
"""

from __future__ import annotations

import torch
from torch import nn


def folded(text: str) -> tuple[str, list[int]]:
    """(``text`` case-folded with every run of characters other than letters and digits turned into one
    space, trimmed; the index in ``text`` of each character of it, a space mapped to its run's start)."""
    chars: list[str] = []
    where: list[int] = []
    for i, c in enumerate(text):
        if c.isalnum():
            for f in c.casefold():
                chars.append(f)
                where.append(i)
        elif chars and chars[-1] != " ":
            chars.append(" ")
            where.append(i)
    if chars and chars[-1] == " ":
        chars.pop()
        where.pop()
    return "".join(chars), where


def subject_key(tokenizer, subject: str) -> str:
    """The folded form a subject is stored and looked up under, taken through the tokenizer
    (encode, then decode) so that prompt and subject are normalised the same way."""
    ids = tokenizer(" " + subject.strip(), add_special_tokens=False)["input_ids"]
    return folded(tokenizer.decode(ids))[0]


class SubjectIndex(nn.Module):
    """The folded strings of every edited subject (a UTF-8 byte buffer, saved with the adaptor)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("text", torch.zeros(0, 1, dtype=torch.uint8))
        self._keys: list[str] | None = None
        self._found: dict[tuple[int, ...], list[int] | None] = {}  # prompt tokens -> span (routing asks often)

    def __len__(self) -> int:
        return self.text.shape[0]

    def keys(self) -> list[str]:
        """The stored subject keys, longest first (rebuilt after a change)."""
        if self._keys is None:
            rows = [bytes(t for t in row if t).decode("utf-8") for row in self.text.tolist()]
            self._keys = sorted(rows, key=len, reverse=True)
        return self._keys

    def add(self, keys: list[str]) -> None:
        """Store subject keys (see :func:`subject_key`) not stored yet; empty keys are ignored."""
        known = set(self.keys())
        new = [k.encode("utf-8") for k in dict.fromkeys(keys) if k and k not in known]
        if not new:
            return
        width = max(self.text.shape[1], *(len(k) for k in new))
        old = torch.nn.functional.pad(self.text, (0, width - self.text.shape[1]))
        rows = torch.tensor([list(k) + [0] * (width - len(k)) for k in new], dtype=torch.uint8, device=old.device)
        self.text = torch.cat([old, rows])
        self._keys, self._found = None, {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "text"
        if key in state_dict:  # a saved index can be larger than this empty one
            self.text = torch.zeros_like(state_dict[key]).to(self.text.device)
        self._keys, self._found = None, {}
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def find(self, input_ids: torch.Tensor, mask: torch.Tensor, tokenizer) -> torch.Tensor:
        """(B, T) mask of the subject span in each row's masked tokens; all zero where none is named.

        The longest stored subject wins, then the earliest mention. Masked-out positions (the
        target, padding) are never part of a span.
        """
        span = torch.zeros_like(mask, dtype=torch.bool)
        keys = self.keys()
        if not keys:
            return span
        for row, (ids, keep) in enumerate(zip(input_ids.tolist(), mask.bool().tolist(), strict=True)):
            positions = [t for t, k in enumerate(keep) if k]
            tokens = tuple(ids[t] for t in positions)
            if tokens not in self._found:
                self._found[tokens] = mention(tokenizer, list(tokens), keys)
            hit = self._found[tokens]
            if hit is not None:
                span[row, [positions[i] for i in hit]] = True
        return span


def mention(tokenizer, tokens: list[int], keys: list[str]) -> list[int] | None:
    """Indices into ``tokens`` of the first mention, at word boundaries, of the longest key that the
    decoded tokens name; None when they name none."""
    pieces = [tokenizer.decode([t]) for t in tokens]
    owner = [i for i, piece in enumerate(pieces) for _ in piece]  # the token of each decoded character
    flat, where = folded("".join(pieces))
    for key in keys:
        start = flat.find(key)
        while start >= 0:
            end = start + len(key)
            if (start == 0 or flat[start - 1] == " ") and (end == len(flat) or flat[end] == " "):
                return sorted(set(owner[where[start] : where[end - 1] + 1]))
            start = flat.find(key, start + 1)
    return None
