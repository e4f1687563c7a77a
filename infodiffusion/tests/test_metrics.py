import math

import pytest
import torch

from infodiffusion.metrics import (
    BertScorer,
    corpus_sentence_bleu,
    dist_1,
    div_4,
    evaluate_candidates,
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


def test_evaluate_candidates_uses_mbr_pick_and_names_short_sources():
    cands = [["x y z w", "a b c d", "a b c d"], ["e f g h", "e f g h", "e f g h"]]
    metrics = evaluate_candidates(cands, ["a b c d", "e f g h"], None, n_quality=3, n_diversity=2)
    assert metrics["bleu"] == pytest.approx(1.0)
    assert metrics["self_bleu"] == pytest.approx((sentence_bleu4("x y z w", "a b c d") + 1.0) / 2)
    with pytest.raises(ValueError, match="source 1 has 1 candidates"):
        evaluate_candidates([["a", "b", "c"], ["a"]], ["a", "b"], None, n_quality=3, n_diversity=2)


def _hand_bertscore(hypothesis, reference, layer):
    """Eq. 1-3 of Zhang et al. (2020) as the authors' code computes them: layer-``layer``
    WordPiece embeddings of the MiniLM, cosine similarities, greedy max each way over all tokens
    ([CLS]/[SEP] can be matched) but averaged over the real tokens only (their weight is 0), F1."""
    from shared_utils.models import load_encoder

    model, tokenizer = load_encoder("minilm-l6")
    vectors = []
    for text in (hypothesis, reference):
        batch = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch, output_hidden_states=True).hidden_states[layer][0]
        vectors.append(torch.nn.functional.normalize(hidden, dim=-1))
    sim = vectors[1] @ vectors[0].t()
    recall, precision = sim.max(1).values[1:-1].mean(), sim.max(0).values[1:-1].mean()
    return float(2 * precision * recall / (precision + recall))


@pytest.mark.slow
def test_bertscore_is_the_bert_score_library_on_the_embedded_minilm():
    """The ``bert-score`` library on the local MiniLM folder gives what the paper's equations give
    at the chosen layer (a wrong layer, [CLS]/[SEP] kept or IDF on would each move it)."""
    ref = "the red car was sold in paris ."
    hyps = ["the red car was bought in paris .", "quantum chromodynamics lattice", ref]
    scorer = BertScorer("minilm-l6", layer=6)
    scores = [scorer.f1([h], [ref]) for h in hyps]
    for hyp, score in zip(hyps, scores):
        assert score == pytest.approx(_hand_bertscore(hyp, ref, 6), abs=1e-5)
    assert scores[2] == pytest.approx(1.0, abs=1e-5) and 0 < scores[1] < scores[0] < 1
    # a pinned value (bert-score 0.3.13, all-MiniLM-L6-v2 layer 6), so a silent change shows
    assert scorer.f1(["the cat sat on the mat"], ["a dog lay on a rug"]) == pytest.approx(0.50345, abs=1e-4)
    shallow = BertScorer("minilm-l6", layer=3).f1(hyps[:1], [ref])
    assert shallow == pytest.approx(_hand_bertscore(hyps[0], ref, 3), abs=1e-5) and shallow != pytest.approx(scores[0])
    with pytest.raises(ValueError, match="bertscore_layer"):
        BertScorer("minilm-l6", layer=9)
