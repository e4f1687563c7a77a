import math

import pytest
import torch

from infodiffusion.metrics import (
    BertScorer,
    corpus_sentence_bleu,
    dist_1,
    div_4,
    evaluate_candidates,
    greedy_match_f1,
    mbr_select,
    rouge_l,
    self_bleu,
    sentence_bleu4,
)


def test_bleu_hand_computed():
    # all n-gram precisions are 1; brevity penalty exp(1 - 5/4)
    assert sentence_bleu4("a b c d", "a b c d e") == pytest.approx(math.exp(1 - 5 / 4), rel=1e-9)
    assert sentence_bleu4("the cat sat on it", "the cat sat on it") == pytest.approx(1.0)
    assert sentence_bleu4("", "a b") == 0.0
    assert corpus_sentence_bleu(["a b c d", "v w x y z"], ["a b c d", "v w x y z"]) == pytest.approx(1.0)


def test_rouge_l_hand_computed():
    # LCS(a b c d, a c d e f) = a c d: P = 3/4, R = 3/5
    p, r = 3 / 4, 3 / 5
    assert rouge_l(["a b c d"], ["a c d e f"]) == pytest.approx(2 * p * r / (p + r), rel=1e-9)


def test_dist_1_self_bleu_div_4_hand_computed():
    assert dist_1(["a a b", "c d"]) == pytest.approx((2 / 3 + 1) / 2)
    assert div_4(["a b c d e", "a b c d f"]) == pytest.approx(3 / 4)
    assert self_bleu(["a b c d", "a b c d", "a b c d"]) == pytest.approx(1.0)
    assert self_bleu(["a b c d", "a b c d e"]) == pytest.approx(math.exp(1 - 5 / 4), rel=1e-9)


def test_mbr_picks_the_consensus_candidate():
    assert mbr_select(["q r s t", "a b c x", "a b c d", "a b c d"]) == 2
    with pytest.raises(ValueError):
        mbr_select([])


def test_greedy_match_hand_computed():
    cand = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    ref = torch.tensor([[3.0, 0.0]])
    # recall: ref token matches cand 0 (cos 1) -> 1; precision: cand 0 -> 1, cand 1 -> 0 -> 0.5
    assert greedy_match_f1(cand, ref) == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_evaluate_candidates_uses_mbr_pick_and_names_short_sources():
    cands = [["x y z w", "a b c d", "a b c d"], ["e f g h", "e f g h", "e f g h"]]
    metrics = evaluate_candidates(cands, ["a b c d", "e f g h"], None, n_quality=3, n_diversity=2)
    assert metrics["bleu"] == pytest.approx(1.0)
    assert metrics["self_bleu"] == pytest.approx((sentence_bleu4("x y z w", "a b c d") + 1.0) / 2)
    with pytest.raises(ValueError, match="source 1 has 1 candidates"):
        evaluate_candidates([["a", "b", "c"], ["a"]], ["a", "b"], None, n_quality=3, n_diversity=2)


def test_bertscore_with_embedded_minilm():
    scorer = BertScorer("minilm-l6", layer=6)
    same = scorer.f1(["the red car was sold in paris ."], ["the red car was sold in paris ."])
    assert same == pytest.approx(1.0, abs=1e-5)
    close, far = (
        scorer.f1([h], ["the red car was sold in paris ."])
        for h in ("the red car was bought in paris .", "quantum chromodynamics lattice")
    )
    assert 0 < far < close < 1
    with pytest.raises(ValueError, match="bertscore_layer"):
        BertScorer("minilm-l6", layer=9)
