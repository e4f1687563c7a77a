"""DiffuSeq's evaluation suite: BLEU, ROUGE-L, BERTScore, Dist-1, Self-BLEU, Div-4, MBR.

Follows DiffuSeq's ``eval_seq2seq.py``: texts are split on whitespace; sentence BLEU is
nltk's with smoothing method 4, averaged over sentences; Dist-1 is the per-sentence ratio of
distinct unigrams, averaged; Self-BLEU is the mean pairwise BLEU between the candidates of
one source; Div-4 is the ratio of distinct 4-grams over all candidates of one source;
MBR picks the candidate with the largest summed BLEU against the other candidates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from nltk.util import ngrams
from rouge_score import rouge_scorer

from shared_utils.errors import ConfigError

_SMOOTH = SmoothingFunction().method4


def sentence_bleu4(hypothesis: str, reference: str) -> float:
    """BLEU-4 of one hypothesis against one reference (nltk, smoothing method 4)."""
    hyp, ref = hypothesis.split(), reference.split()
    if not hyp:
        return 0.0
    return float(sentence_bleu([ref], hyp, smoothing_function=_SMOOTH))


def corpus_sentence_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    _check_lengths(hypotheses, references)
    return float(np.mean([sentence_bleu4(h, r) for h, r in zip(hypotheses, references)]))


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 (rouge-score, no stemming)."""
    _check_lengths(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return float(np.mean([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hypotheses, references)]))


def dist_1(texts: Sequence[str]) -> float:
    """Mean over sentences of (#distinct unigrams / #unigrams); empty sentences count 0."""
    ratios = []
    for text in texts:
        words = text.split()
        ratios.append(len(set(words)) / len(words) if words else 0.0)
    return float(np.mean(ratios))


def self_bleu(candidates: Sequence[str]) -> float:
    """Mean BLEU over pairs (i < j) of candidates of one source (lower = more diverse)."""
    scores = [
        sentence_bleu4(candidates[i], candidates[j])
        for i in range(len(candidates))
        for j in range(i + 1, len(candidates))
    ]
    return float(np.mean(scores)) if scores else 0.0


def div_4(candidates: Sequence[str]) -> float:
    """Distinct 4-grams / all 4-grams over the candidates of one source."""
    grams = [g for text in candidates for g in ngrams(text.split(), 4)]
    return len(set(grams)) / len(grams) if grams else 0.0


def mbr_select(candidates: Sequence[str]) -> int:
    """Index of the minimum-Bayes-risk candidate: max summed BLEU against the others."""
    if not candidates:
        raise ValueError("mbr_select needs at least one candidate")
    scores = [sum(sentence_bleu4(c, o) for j, o in enumerate(candidates) if j != i) for i, c in enumerate(candidates)]
    return int(np.argmax(scores))


def greedy_match_f1(cand: torch.Tensor, ref: torch.Tensor) -> float:
    """BERTScore F1 from token embeddings (Zhang et al. 2020, Eq. 1-3 without IDF)."""
    if len(cand) == 0 or len(ref) == 0:
        return 0.0
    cand = torch.nn.functional.normalize(cand.float(), dim=-1)
    ref = torch.nn.functional.normalize(ref.float(), dim=-1)
    sim = ref @ cand.t()
    recall = sim.max(1).values.mean()
    precision = sim.max(0).values.mean()
    return float(2 * precision * recall / (precision + recall))


class BertScorer:
    """BERTScore F1 with a local encoder (default the embedded MiniLM-L6, last layer).

    Tokens are the encoder's WordPieces without [CLS]/[SEP]; IDF weighting off; no baseline
    rescaling (so values are not comparable to rescaled published numbers).
    """

    def __init__(self, model: str = "minilm-l6", layer: int = 6, device: str = "cpu", batch_size: int = 64):
        from shared_utils.models import load_encoder

        self.model, self.tokenizer = load_encoder(model, device=device)
        self.model.eval()
        n_layers = self.model.config.num_hidden_layers
        if not 1 <= layer <= n_layers:
            raise ConfigError(f"eval.bertscore_layer must be in [1, {n_layers}], got {layer}")
        self.layer, self.device, self.batch_size = layer, device, batch_size

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> list[torch.Tensor]:
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=256,
            ).to(self.device)
            hidden = self.model(**batch, output_hidden_states=True).hidden_states[self.layer]
            lengths = batch["attention_mask"].sum(1)
            for h, n in zip(hidden, lengths.tolist()):
                out.append(h[1 : n - 1].cpu())
        return out

    def f1(self, hypotheses: Sequence[str], references: Sequence[str]) -> float:
        _check_lengths(hypotheses, references)
        hyp, ref = self.embed(hypotheses), self.embed(references)
        return float(np.mean([greedy_match_f1(h, r) for h, r in zip(hyp, ref)]))


def _check_lengths(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")


def evaluate_candidates(
    candidates: Sequence[Sequence[str]],
    references: Sequence[str],
    scorer: BertScorer | None,
    n_quality: int = 10,
    n_diversity: int = 3,
) -> dict[str, float]:
    """The six DiffuSeq metrics: quality on the MBR pick of the first ``n_quality`` candidates,
    Dist-1 on those picks, Self-BLEU and Div-4 over the first ``n_diversity`` candidates."""
    _check_lengths(candidates, references)
    for i, cands in enumerate(candidates):
        if len(cands) < max(n_quality, n_diversity):
            raise ConfigError(
                f"source {i} has {len(cands)} candidates, need {max(n_quality, n_diversity)} "
                "(eval.mbr_quality, eval.mbr_diversity)"
            )
    picks = [c[mbr_select(c[:n_quality])] for c in candidates]
    metrics = {
        "bleu": corpus_sentence_bleu(picks, references),
        "rouge_l": rouge_l(picks, references),
        "dist_1": dist_1(picks),
        "self_bleu": float(np.mean([self_bleu(c[:n_diversity]) for c in candidates])),
        "div_4": float(np.mean([div_4(c[:n_diversity]) for c in candidates])),
    }
    if scorer is not None:
        metrics["bertscore"] = scorer.f1(picks, references)
    return metrics
