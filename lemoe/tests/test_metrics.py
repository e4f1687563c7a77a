import pytest
import torch

from lemoe.metrics import exact_from_teacher_forcing, exact_match, token_accuracy


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
