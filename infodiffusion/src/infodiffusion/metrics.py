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


class BertScorer:
    """BERTScore F1 (Zhang et al. 2020, Eq. 1-3: greedy cosine matching of contextual token
    embeddings, no IDF, no baseline rescaling) computed by the ``bert-score`` library.

    ``model`` is an embedded alias (default the all-MiniLM-L6-v2 that ships with the
    repository), a local folder or a hub id (e.g. ``roberta-large`` with ``layer`` 17, its
    ``bert-score`` default, when the user has it cached). The alias is resolved to its folder
    through ``shared_utils.models`` and handed to ``bert_score.BERTScorer`` with an explicit
    ``num_layers``, so no network is needed. Values are comparable with published BERTScore
    numbers only for the same encoder and layer.
    """

    def __init__(self, model: str = "minilm-l6", layer: int = 6, device: str = "cpu", batch_size: int = 64):
        from bert_score import BERTScorer
        from transformers import AutoConfig

        from shared_utils.models import resolve_model

        resolved = resolve_model(model)
        target = str(resolved.path) if resolved.is_local else resolved.name
        n_layers = AutoConfig.from_pretrained(target).num_hidden_layers
        if not 1 <= layer <= n_layers:
            raise ConfigError(f"eval.bertscore_layer must be in [1, {n_layers}] for {model}, got {layer}")
        self.layer = layer
        self._scorer = BERTScorer(model_type=target, num_layers=layer, batch_size=batch_size, device=device)

    def f1(self, hypotheses: Sequence[str], references: Sequence[str]) -> float:
        """Mean BERTScore F1 of each hypothesis against its reference."""
        _check_lengths(hypotheses, references)
        _, _, f1 = self._scorer.score(list(hypotheses), list(references))
        return float(f1.mean())


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
