"""Subject mentions (a heuristic): which stored edit subject string a prompt names, and where.

Two LEMoE options read the subject of an edit (ZsRE and CounterFact records carry one):

- ``router.pooling = 'subject'`` (the paper's "entity-level" value): the routing value ē is the
  mean input embedding over the subject span of the prompt instead of the whole prompt.
- ``router.null_threshold = 'subject'``: no expert fires on a prompt that names no edited subject.

At inference nobody passes a subject, so the span is found by looking the prompt's tokens up in
the subjects of the edits made so far (a gazetteer of token sequences). Training and inference
use the same lookup, so a prompt gets the same value with or without its target appended.
"""

from __future__ import annotations

import torch
from torch import nn

PAD = -1


def subject_token_variants(tokenizer, subject: str) -> list[list[int]]:
    """Token ids of ``subject`` as it can appear in a prompt: after a space or not, and case-folded: as
    given, first letter upper-case, all lower-case, all upper-case, title case.

    Byte-level BPE tokenisers give a word different ids at the start of a text and after a
    space (``Paris`` vs ``ĠParis``), so each spelling is stored. This is a heuristic: a hyphenated,
    misspelled or BPE-merged mention ("(APA-56)?") is still missed.
    """
    subject = subject.strip()
    spellings = {subject, subject[:1].upper() + subject[1:], subject.lower(), subject.upper(), subject.title()}
    variants = []
    for text in sorted(spellings):
        for prefix in ("", " "):
            ids = list(tokenizer(prefix + text, add_special_tokens=False)["input_ids"])
            if ids and ids not in variants:
                variants.append(ids)
    return variants


class SubjectIndex(nn.Module):
    """The token sequences of every edited subject (a buffer, saved with the adaptor)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("ids", torch.zeros(0, 1, dtype=torch.long))
        self._lookup: dict[int, set[tuple[int, ...]]] | None = None

    def __len__(self) -> int:
        return self.ids.shape[0]

    def add(self, sequences: list[list[int]]) -> None:
        """Store token sequences not stored yet."""
        known = {tuple(s) for by_len in self.lookup().values() for s in by_len}
        new = [list(s) for s in dict.fromkeys(tuple(s) for s in sequences) if s and tuple(s) not in known]
        if not new:
            return
        width = max(self.ids.shape[1], *(len(s) for s in new))
        old = torch.nn.functional.pad(self.ids, (0, width - self.ids.shape[1]), value=PAD)
        rows = torch.tensor([s + [PAD] * (width - len(s)) for s in new], dtype=torch.long, device=old.device)
        self.ids = torch.cat([old, rows])
        self._lookup = None

    def lookup(self) -> dict[int, set[tuple[int, ...]]]:
        """{sequence length: set of stored sequences of that length} (rebuilt after a change)."""
        if self._lookup is None:
            self._lookup = {}
            for row in self.ids.tolist():
                seq = tuple(t for t in row if t != PAD)
                self._lookup.setdefault(len(seq), set()).add(seq)
        return self._lookup

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "ids"
        if key in state_dict:  # a saved index can be larger than this empty one
            self.ids = torch.zeros_like(state_dict[key]).to(self.ids.device)
        self._lookup = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def find(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) mask of the subject span in each row's masked tokens; all zero where none is named.

        The longest stored sequence wins, then the earliest occurrence. Masked-out positions (the
        target, padding) are never part of a span.
        """
        span = torch.zeros_like(mask, dtype=torch.bool)
        lookup = self.lookup()
        lengths = sorted(lookup, reverse=True)
        for row, (ids, keep) in enumerate(zip(input_ids.tolist(), mask.bool().tolist(), strict=True)):
            positions = [t for t, k in enumerate(keep) if k]
            tokens = [ids[t] for t in positions]
            hit = _first_match(tokens, lengths, lookup)
            if hit is not None:
                start, length = hit
                span[row, positions[start : start + length]] = True
        return span


def _first_match(tokens: list[int], lengths: list[int], lookup: dict[int, set[tuple[int, ...]]]):
    for length in lengths:
        for start in range(len(tokens) - length + 1):
            if tuple(tokens[start : start + length]) in lookup[length]:
                return start, length
    return None
