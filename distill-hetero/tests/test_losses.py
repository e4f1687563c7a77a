import math
import typing

import pytest
import torch

from distill_hetero.config import LossConfig
from distill_hetero.losses import INTERMEDIATE_LOSSES, OUTPUT_LOSSES, TeacherDistribution
from distill_hetero.weighting import WEIGHTINGS, DynamicWeightAverage, UncertaintyWeights, build_weighting
from shared_utils.errors import ConfigError

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
    fixed = build_weighting(LossConfig(weighting="fixed", weights={"fkl": 0.5}), ["ce", "fkl"])
    assert float(fixed({"ce": torch.tensor(2.0), "fkl": torch.tensor(4.0)})) == pytest.approx(4.0)
    assert list(fixed.parameters()) == []
    with pytest.raises(ValueError, match=r"loss.weights names \['mse'\]"):
        build_weighting(LossConfig(weighting="fixed", weights={"mse": 1.0}), ["ce"])
    unknown = LossConfig()
    unknown.weighting = "gradnorm"  # past the config's own check, which test_config covers
    with pytest.raises(ConfigError, match=r"^loss.weighting='gradnorm' is not one of fixed, uncertainty, dwa$"):
        build_weighting(unknown, ["fkl"])
    assert typing.get_args(typing.get_type_hints(LossConfig)["weighting"]) == tuple(WEIGHTINGS)


def test_dwa_weights_follow_the_papers_formula_with_one_step_periods():
    dwa = build_weighting(LossConfig(weighting="dwa", dwa_window=1), ["ce", "fkl", "inter"])
    assert isinstance(dwa, DynamicWeightAverage) and list(dwa.parameters()) == []
    assert dwa.current() == {"ce": 1.0, "fkl": 1.0, "inter": 1.0}  # step 1
    dwa.observe({"ce": 3.0, "fkl": 4.0, "inter": 2.0})
    assert dwa.current() == {"ce": 1.0, "fkl": 1.0, "inter": 1.0}  # step 2: one loss seen, no ratio yet
    dwa.observe({"ce": 3.0, "fkl": 2.0, "inter": 1.5})
    # step 3: r = (3/3, 2/4, 1.5/2) = (1, 0.5, 0.75); w_k = 3 exp(r_k / 2) / sum_i exp(r_i / 2)
    e = [math.exp(0.5), math.exp(0.25), math.exp(0.375)]  # 1.648721, 1.284025, 1.454991
    expected = [3 * x / sum(e) for x in e]  # 1.127270, 0.877918, 0.994812
    assert list(dwa.current().values()) == pytest.approx(expected, rel=1e-6)
    assert sum(dwa.current().values()) == pytest.approx(3.0)
    assert expected[0] > expected[2] > expected[1]  # the loss that fell least gets the most weight
    losses = {"ce": torch.tensor(1.0), "fkl": torch.tensor(2.0), "inter": torch.tensor(4.0)}
    assert float(dwa(losses)) == pytest.approx(expected[0] + 2 * expected[1] + 4 * expected[2], rel=1e-6)
    dwa.observe({"ce": 1.5, "fkl": 1.0, "inter": 1.5})
    # step 4 compares only the last two steps: r = (1.5/3, 1/2, 1.5/1.5) = (0.5, 0.5, 1)
    e = [math.exp(0.25), math.exp(0.25), math.exp(0.5)]
    assert list(dwa.current().values()) == pytest.approx([3 * x / sum(e) for x in e], rel=1e-6)


def test_dwa_compares_the_mean_losses_of_the_last_two_periods():
    dwa = build_weighting(LossConfig(weighting="dwa", dwa_window=2, dwa_temperature=1.0), ["fkl", "inter"])
    for step in ({"fkl": 5.0, "inter": 2.0}, {"fkl": 3.0, "inter": 2.0}, {"fkl": 2.0, "inter": 1.5}):
        dwa.observe(step)
        assert dwa.current() == {"fkl": 1.0, "inter": 1.0}  # fewer than two periods complete
    dwa.observe({"fkl": 2.0, "inter": 1.5})
    # period means L(1) = (4, 2), L(2) = (2, 1.5): r = (0.5, 0.75), T = 1
    e = [math.exp(0.5), math.exp(0.75)]
    expected = [2 * x / sum(e) for x in e]
    assert list(dwa.current().values()) == pytest.approx(expected, rel=1e-6)
    dwa.observe({"fkl": 0.5, "inter": 0.5})
    assert list(dwa.current().values()) == pytest.approx(expected, rel=1e-6)  # held until the period ends
    dwa.observe({"fkl": 1.5, "inter": 2.5})
    # L(3) = (1, 1.5): r = (1/2, 1.5/1.5)
    e = [math.exp(0.5), math.exp(1.0)]
    assert list(dwa.current().values()) == pytest.approx([2 * x / sum(e) for x in e], rel=1e-6)
