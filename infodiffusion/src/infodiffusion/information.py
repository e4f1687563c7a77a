"""Information content of target words and its sentence-level normalisation.

InfoDiffusion (Wang, Li & Li, 2023) noises each target word according to how much
information it carries. The poster gives the per-sentence normalised score

    e(w_i) = (H(w_i) - mean_j H(w_j)) / (max_j H(w_j) - min_j H(w_j))        (Eq. info-score)

where j runs over the words of the sentence. The paper leaves H open; we offer

* ``self_information``: H(w) = -log p(w), p from add-one smoothed token frequencies of the
  training *targets* (the default);
* ``tfidf``: H(w_i) = tf(w_i, sentence) * idf(w), idf(w) = log((1 + S) / (1 + df(w))) + 1
  with S training targets and df(w) the number of targets containing w.

Only "content" positions enter the normalisation: target positions holding a real token
(not [PAD], [SEP], [CLS]). Other positions get e = 0, i.e. they follow the base schedule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

SCORE_KINDS = ("self_information", "tfidf")


class InformationScores:
    """Per-token information H(w) over a (compact) vocabulary of ``vocab_size`` ids."""

    def __init__(self, word_scores: torch.Tensor, special_ids: Sequence[int], kind: str = "self_information"):
        if kind not in SCORE_KINDS:
            raise ValueError(f"diffusion.info_score must be one of {SCORE_KINDS}, got {kind!r}")
        self.kind = kind
        self.word_scores = word_scores.float()
        self.special_ids = sorted(set(int(i) for i in special_ids))
        is_special = torch.zeros(len(word_scores), dtype=torch.bool)
        is_special[self.special_ids] = True
        self.is_special = is_special

    @classmethod
    def from_targets(
        cls,
        targets: Iterable[Sequence[int]],
        vocab_size: int,
        special_ids: Sequence[int],
        kind: str = "self_information",
    ) -> InformationScores:
        """Count the training targets (lists of token ids, specials ignored) and build H."""
        specials = set(int(i) for i in special_ids)
        counts = torch.zeros(vocab_size, dtype=torch.float64)
        doc_freq = torch.zeros(vocab_size, dtype=torch.float64)
        n_sentences = 0
        for sentence in targets:
            words = [int(w) for w in sentence if int(w) not in specials]
            n_sentences += 1
            for w in words:
                counts[w] += 1
            for w in set(words):
                doc_freq[w] += 1
        if kind == "self_information":
            p = (counts + 1.0) / (counts.sum() + vocab_size)
            scores = -torch.log(p)
        elif kind == "tfidf":
            scores = torch.log((1.0 + n_sentences) / (1.0 + doc_freq)) + 1.0
        else:
            raise ValueError(f"diffusion.info_score must be one of {SCORE_KINDS}, got {kind!r}")
        return cls(scores, sorted(specials), kind)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "word_scores": self.word_scores.tolist(), "special_ids": self.special_ids}

    @classmethod
    def from_state_dict(cls, state: dict) -> InformationScores:
        return cls(torch.tensor(state["word_scores"]), state["special_ids"], state["kind"])

    def raw(self, ids: torch.Tensor) -> torch.Tensor:
        """H(w_i) for every position of ``ids`` [B, L] (tf-idf multiplies by the in-sentence tf)."""
        scores = self.word_scores.to(ids.device)[ids]
        if self.kind == "tfidf":
            content = ~self.is_special.to(ids.device)[ids]
            same = (ids.unsqueeze(2) == ids.unsqueeze(1)) & content.unsqueeze(1)
            length = content.sum(1, keepdim=True).clamp(min=1)
            scores = scores * same.sum(2) / length
        return scores

    def normalised(self, ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
        """e(w_i) of Eq. info-score, in [-1, 1]; 0 outside the content positions of the target."""
        content = target_mask.bool() & ~self.is_special.to(ids.device)[ids]
        h = self.raw(ids)
        n = content.sum(1, keepdim=True)
        mean = torch.where(content, h, 0.0).sum(1, keepdim=True) / n.clamp(min=1)
        hi = torch.where(content, h, -math.inf).amax(1, keepdim=True)
        lo = torch.where(content, h, math.inf).amin(1, keepdim=True)
        spread = (hi - lo).nan_to_num(0.0, posinf=0.0, neginf=0.0)
        e = (h - mean) / torch.where(spread > 0, spread, 1.0)
        return torch.where(content & (spread > 0), e, 0.0)
