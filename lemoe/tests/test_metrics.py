import pytest
import torch

from lemoe.metrics import exact_from_teacher_forcing, exact_match, repeats, token_accuracy, token_f1


def test_token_accuracy_hand_computed():
    preds = [torch.tensor([5, 6, 7]), torch.tensor([1]), torch.tensor([2, 9])]
    targets = [torch.tensor([5, 0, 7]), torch.tensor([1]), torch.tensor([3, 4])]
    assert token_accuracy(preds, targets) == pytest.approx([2 / 3, 1.0, 0.0])


def test_locality_is_agreement_with_the_unedited_argmax():
    unedited = [torch.tensor([4, 4, 4, 4])]
    edited = [torch.tensor([4, 1, 4, 4])]
    assert token_accuracy(edited, unedited) == [0.75]


def test_exact_match_views():
    targets = [torch.tensor([3, 4]), torch.tensor([3, 4])]
    assert exact_match([torch.tensor([3, 4, 9]), torch.tensor([3, 5])], targets) == [1.0, 0.0]
    assert exact_from_teacher_forcing([torch.tensor([3, 4]), torch.tensor([3, 5])], targets) == [1.0, 0.0]


def test_shape_mismatch_names_the_example():
    with pytest.raises(ValueError, match="example 1"):
        token_accuracy([torch.tensor([1]), torch.tensor([1, 2])], [torch.tensor([1]), torch.tensor([1])])


def test_token_f1_and_repetition_hand_computed():
    assert token_f1(torch.tensor([1, 2, 2]), torch.tensor([2, 3])) == pytest.approx(
        2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2)
    )
    assert token_f1(torch.tensor([4]), torch.tensor([5])) == 0.0
    assert token_f1(torch.tensor([2, 3]), torch.tensor([3, 2])) == 1.0
    assert repeats(torch.tensor([7, 8, 8, 8, 1])) and not repeats(torch.tensor([8, 8, 1, 8, 8]))
    # a phrase three times back to back counts with max_n >= its length, not at the token level
    phrase = torch.tensor([5, 9, 4, 9, 4, 9, 4, 6])
    assert repeats(phrase, max_n=2) and not repeats(phrase) and not repeats(torch.tensor([9, 4, 9, 4, 6]), max_n=8)
    assert repeats(torch.tensor([9, 3, 4, 9, 4, 9, 3, 4]), max_n=2, ignore=frozenset({3}))  # blanks skipped


def test_generation_scores_of_the_unedited_model_match_it(tokenizer):
    from conftest import tiny_model

    from lemoe.config import TrainConfig
    from lemoe.data import EditRequest
    from lemoe.metrics import build_eval_sets, generation_scores
    from lemoe.training import SequentialEditor

    model = tiny_model("llama")
    requests = [EditRequest(f"fact {c} is", c * 2, f"so fact {c}", f"other {c}", "ok") for c in "abc"]
    sets = build_eval_sets(model, tokenizer, requests, 1, unrelated=["a short text", "another one"], generation=True)
    scores = generation_scores(SequentialEditor(model, tokenizer, 1, TrainConfig(progress=False)), sets)
    assert scores["loc_gen_em"] == [1.0] * 3 and scores["loc_gen_f1"] == [1.0] * 3  # its own greedy answers
    assert scores["ppl_ratio"] == 1.0 and scores["repetition"] == scores["repetition_unedited"]
    assert min(scores["rel_gen_f1"]) >= 0.0 and max(scores["rel_gen_f1"]) <= 1.0 and scores["ppl"] > 1.0
