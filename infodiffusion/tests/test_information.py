import math

import pytest
import torch

from infodiffusion.information import InformationScores

PAD, CLS, SEP = 0, 1, 2
SPECIALS = [PAD, CLS, SEP]
# vocabulary: 3 specials + words 3 ("the"), 4 ("cat"), 5 ("dog"), 6 ("sat"), 7 (never seen)
CORPUS = [[3, 4, 6, SEP, PAD], [3, 5, 6, SEP], [3, 4, SEP]]


def test_self_information_matches_hand_counts():
    info = InformationScores.from_targets(CORPUS, vocab_size=8, special_ids=SPECIALS)
    # counts: the=3, cat=2, dog=1, sat=2, unseen=0; N=8 words; add-one over V=8 ids -> denominator 16
    expected = {
        3: -math.log(4 / 16),
        4: -math.log(3 / 16),
        5: -math.log(2 / 16),
        6: -math.log(3 / 16),
        7: -math.log(1 / 16),
    }
    for word, value in expected.items():
        assert info.word_scores[word].item() == pytest.approx(value, rel=1e-6)


def test_tfidf_matches_hand_counts():
    info = InformationScores.from_targets(CORPUS, vocab_size=8, special_ids=SPECIALS, kind="tfidf")
    # 3 sentences; df: the=3, cat=2, dog=1, sat=2 -> idf = log(4 / (1 + df)) + 1
    assert info.word_scores[3].item() == pytest.approx(math.log(4 / 4) + 1)
    assert info.word_scores[5].item() == pytest.approx(math.log(4 / 2) + 1)
    ids = torch.tensor([[3, 4, 4, SEP]])
    raw = info.raw(ids)
    # tf of "cat" in a 3-word sentence is 2/3
    assert raw[0, 1].item() == pytest.approx((math.log(4 / 3) + 1) * 2 / 3, rel=1e-6)
    assert raw[0, 0].item() == pytest.approx(1.0 / 3, rel=1e-6)


def test_normalised_score_is_centred_and_range_normalised():
    info = InformationScores(torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0, 4.0]), SPECIALS)
    ids = torch.tensor([[CLS, 5, SEP, 3, 4, 5, SEP, PAD]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    e = info.normalised(ids, mask)
    # target content words H = 1, 2, 4: mean 7/3, range 3
    expected = torch.tensor([[0, 0, 0, (1 - 7 / 3) / 3, (2 - 7 / 3) / 3, (4 - 7 / 3) / 3, 0, 0]])
    assert torch.allclose(e, expected.float(), atol=1e-6)
    # source positions never count, even if they hold a content word
    assert e[0, 1] == 0


def test_constant_information_gives_zero_score():
    info = InformationScores(torch.tensor([0.0, 0.0, 0.0, 1.0]), SPECIALS)
    e = info.normalised(torch.tensor([[3, 3, 3, SEP]]), torch.ones(1, 4))
    assert torch.equal(e, torch.zeros(1, 4))


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="info_score"):
        InformationScores.from_targets(CORPUS, 8, SPECIALS, kind="entropy")
