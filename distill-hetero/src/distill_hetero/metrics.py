"""ROUGE-L as in MiniLLM's evaluation: rouge-score's ``rougeL`` F-measure with stemming, the maximum
over the references of each example, averaged over examples, x100."""

from __future__ import annotations

from rouge_score import rouge_scorer

_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, references: list[str]) -> float:
    """Best ROUGE-L F1 (0..1) of ``prediction`` against any reference."""
    if not references:
        raise ValueError("rouge_l needs at least one reference")
    return max(_SCORER.score(ref, prediction)["rougeL"].fmeasure for ref in references)


def rouge_l_scores(predictions: list[str], references: list[list[str]]) -> list[float]:
    """Per-example best ROUGE-L, x100."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions:
        raise ValueError("no predictions to score")
    return [100.0 * rouge_l(p, r) for p, r in zip(predictions, references)]


def corpus_rouge_l(predictions: list[str], references: list[list[str]]) -> float:
    """Mean over examples of the per-example best ROUGE-L, x100."""
    scores = rouge_l_scores(predictions, references)
    return sum(scores) / len(scores)
