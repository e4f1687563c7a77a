import math

import pytest
import torch

from distill_hetero.losses import INTERMEDIATE_LOSSES, OUTPUT_LOSSES, TeacherDistribution
from distill_hetero.weighting import UncertaintyWeights, build_weighting

# teacher p = [1/4, 3/4], student q = [1/2, 1/2]
TEACHER = torch.tensor([[0.0, math.log(3.0)]])
STUDENT = torch.tensor([[0.0, 0.0]])
P, Q = [0.25, 0.75], [0.5, 0.5]


def kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b))


def out_loss(name, student=STUDENT, teacher=TEACHER, temperature=1.0, alpha=0.1, labels=None):
    labels = torch.tensor([1]) if labels is None else labels
    return float(OUTPUT_LOSSES[name](student, labels, TeacherDistribution(logits=teacher), temperature, alpha))


def test_output_losses_match_hand_computed_values():
    assert out_loss("fkl") == pytest.approx(kl(P, Q), rel=1e-5)  # 0.130812
    assert out_loss("rkl") == pytest.approx(kl(Q, P), rel=1e-5)  # 0.143841
    mix = [0.1 * p + 0.9 * q for p, q in zip(P, Q)]
    assert out_loss("skl") == pytest.approx(kl(P, mix), rel=1e-5)
    mix_r = [0.1 * q + 0.9 * p for p, q in zip(P, Q)]
    assert out_loss("srkl") == pytest.approx(kl(Q, mix_r), rel=1e-5)
    assert out_loss("ce") == pytest.approx(math.log(2), rel=1e-6)


def test_temperature_scales_by_t_squared():
    p2 = [1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))]  # softmax([0, ln3] / 2)
    assert out_loss("fkl", temperature=2.0) == pytest.approx(4 * kl(p2, Q), rel=1e-5)


@pytest.mark.parametrize("name", ["fkl", "rkl", "skl", "srkl"])
def test_kl_losses_vanish_when_student_equals_teacher(name):
    logits = torch.randn(5, 11)
    assert abs(out_loss(name, student=logits, teacher=logits.clone(), labels=torch.zeros(5, dtype=torch.long))) < 1e-6
    assert out_loss(name, student=torch.randn(5, 11), teacher=logits, labels=torch.zeros(5, dtype=torch.long)) > 1e-3


@pytest.mark.parametrize("name", ["fkl", "rkl", "skl", "srkl"])
def test_top_k_teacher_with_all_tokens_equals_full_vocabulary(name):
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 7), torch.randn(4, 7)
    top_lp, top_ids = torch.log_softmax(teacher / 2.0, -1).topk(7, dim=-1)
    sparse = OUTPUT_LOSSES[name](student, None, TeacherDistribution(topk_logprobs=top_lp, topk_ids=top_ids), 2.0, 0.1)
    full = OUTPUT_LOSSES[name](student, None, TeacherDistribution(logits=teacher), 2.0, 0.1)
    assert float(sparse) == pytest.approx(float(full), abs=1e-4)


def test_intermediate_losses_hand_computed_and_zero_cases():
    a = torch.tensor([[1.0, 2.0]])
    assert float(INTERMEDIATE_LOSSES["mse"](a, torch.zeros_like(a))) == pytest.approx(2.5)
    assert float(
        INTERMEDIATE_LOSSES["cosine"](torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]]))
    ) == pytest.approx(1.0)
    x = torch.randn(6, 8)
    assert float(INTERMEDIATE_LOSSES["cosine"](3 * x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(INTERMEDIATE_LOSSES["mse_ln"](2 * x + 3, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(INTERMEDIATE_LOSSES["mse"](2 * x + 3, x)) > 1.0


def test_learned_weights_get_the_homoscedastic_gradient():
    weights = UncertaintyWeights(["fkl", "inter"], init={"inter": 0.5})
    assert weights.current()["inter"] == pytest.approx(0.5)
    losses = {"fkl": torch.tensor(3.0), "inter": torch.tensor(2.0)}
    total = weights(losses)
    # exp(-s) L + s at s = (0, ln 2): 3 + 0.5 * 2 + ln 2
    assert float(total.detach()) == pytest.approx(3 + 1 + math.log(2), rel=1e-6)
    total.backward()
    # d/ds = 1 - exp(-s) L
    assert weights.log_vars.grad.tolist() == pytest.approx([1 - 3.0, 1 - 0.5 * 2.0])


def test_fixed_weights_and_errors():
    fixed = build_weighting("fixed", ["ce", "fkl"], {"fkl": 0.5})
    assert float(fixed({"ce": torch.tensor(2.0), "fkl": torch.tensor(4.0)})) == pytest.approx(4.0)
    assert list(fixed.parameters()) == []
    with pytest.raises(ValueError, match=r"loss.weights names \['mse'\]"):
        build_weighting("fixed", ["ce"], {"mse": 1.0})
