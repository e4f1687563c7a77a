import json

import pytest
import torch

from semantic_peft.adapters import wrap_model
from semantic_peft.config import ExperimentConfig, PeftSettings, ReweightConfig, TrainConfig
from semantic_peft.data import drift_probe_pairs, encode_pairs, probe_pairs
from semantic_peft.evaluation import base_reference, evaluate, greedy_decode, locality, teacher_forced
from semantic_peft.experiment import run_experiment
from semantic_peft.semantic import drift_summary, fact_pass
from semantic_peft.training import train
from shared_utils.device import AcceleratorConfig, build_accelerator

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _accelerator():
    return build_accelerator(AcceleratorConfig(tracker=None, cpu=True), log=False)


@pytest.mark.parametrize(
    ("method", "lr", "reweight"),
    [
        ("lora", 1e-2, None),
        ("lora", 1e-2, ReweightConfig(enabled=True, aux_weight=0.1)),
        ("full", 3e-3, None),
    ],
)
def test_training_drives_accuracy_to_one(method, lr, reweight, tokenizer, make_llama, facts):
    few = facts[:4]
    model = make_llama()

    model = wrap_model(model, PeftSettings(method=method, r=8, lora_alpha=16, target_modules=LINEAR))
    before = evaluate(model, tokenizer, few, None, 0)["metrics"]["train_em"]
    history = train(model, tokenizer, few, TrainConfig(epochs=30, batch_size=4, lr=lr), reweight, _accelerator())
    after = evaluate(model, tokenizer, few, None, 0)["metrics"]
    assert before < 1.0
    assert after["train_em"] == 1.0 and after["train_acc"] == 1.0
    assert history.losses[-1] < 0.6 * history.losses[0]
    assert len(history.trajectory) == 30 and not torch.isnan(history.trajectory[-1]).any()
    assert history.trajectory[-1].mean() < history.trajectory[0].mean()


def test_greedy_exact_match_equals_teacher_forced(tokenizer, make_llama, facts):
    model = make_llama(seed=3)
    pairs = [(f.prompt, f.target) for f in facts]
    _, exact = teacher_forced(model, encode_pairs(tokenizer, pairs))
    targets = [tokenizer(" " + t, add_special_tokens=False)["input_ids"] for _, t in pairs]
    longest = max(len(t) for t in targets)
    assert longest > 1 and all(tokenizer.unk_token_id not in t for t in targets)
    decoded = greedy_decode(model, tokenizer, [p for p, _ in pairs], max_new_tokens=longest)
    assert [float(d[: len(t)] == t) for d, t in zip(decoded, targets)] == exact.tolist()
    # make the model answer the first prompt right by training it, then the identity must still hold
    train(model, tokenizer, facts[:2], TrainConfig(epochs=50, batch_size=2, lr=5e-3), None, _accelerator())
    _, exact = teacher_forced(model, encode_pairs(tokenizer, pairs))
    decoded = greedy_decode(model, tokenizer, [p for p, _ in pairs], max_new_tokens=longest)
    assert exact[:2].sum() >= 1 and exact.sum() < len(pairs)  # both outcomes are present
    assert [float(d[: len(t)] == t) for d, t in zip(decoded, targets)] == exact.tolist()


def test_run_experiment_with_filter_and_reweight(tokenizer, make_llama, facts, tmp_path):
    config = ExperimentConfig(name="t", output_dir=str(tmp_path), seed=0)
    config.peft.method = "lora"
    config.train.epochs, config.train.lr, config.train.batch_size = 3, 1e-2, 4
    config.filter.enabled, config.filter.quantile, config.filter.keep_fraction = True, 0.75, 1.0
    config.reweight.enabled = True
    config.analysis.alone_facts = 2
    config.accelerator.tracker = None
    result = run_experiment(config, make_llama(), tokenizer, facts)
    m = result["metrics"]
    assert m["trained_facts"] == 6  # 8 facts, the 2 above the 0.75 quantile dropped
    assert result["details"]["filter"]["dropped"] == 2
    assert m["optimizer_steps"] == 3 * 2
    per_fact = result["details"]["per_fact"]
    base, final = torch.tensor(per_fact["distance_base"]), torch.tensor(per_fact["distance_final"])
    kept = torch.argsort(base)[:6]  # the filter dropped the two farthest facts
    assert m["pushed_away_fraction"] == pytest.approx(float((final[kept] > base[kept]).float().mean()))
    assert "feature_cos_mean" in m and "alone_em" in m
    assert (tmp_path / "t" / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "t" / "figure.png").stat().st_size > 10_000
    stats = result["details"]["weight_stats"]  # one entry per optimiser step, plotted beside the run figure
    assert len(stats) == m["optimizer_steps"]
    assert all(1.0 <= s["ess"] <= 4.0 and s["min_weight"] <= 1.0 <= s["max_weight"] for s in stats)
    assert m["weight_max"] == max(s["max_weight"] for s in stats)
    assert (tmp_path / "t" / "figure_weights.png").stat().st_size > 10_000
    json.dumps(result["details"])  # JSON-able


def test_drift_summary_counts_the_facts_pushed_away():
    trajectory = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.7, 0.2, 0.6, 0.1], [0.6, 0.4, 0.5, 0.9]])
    summary = drift_summary(trajectory)  # only the last row against the first counts; 0.5 -> 0.5 is not away
    assert summary["pushed_away_fraction"] == 0.5
    assert summary["drift_mean"] == pytest.approx(0.1)
    assert (summary["distance_base_mean"], summary["distance_final_mean"]) == (0.5, pytest.approx(0.6))


def test_untrained_adapter_moves_no_fact(tokenizer, make_llama, facts, tmp_path):
    """lr 0: the LoRA update stays exactly zero, so every final distance equals the base one."""
    config = ExperimentConfig(name="still", output_dir=str(tmp_path), save_model=False)
    config.train.epochs, config.train.lr, config.train.batch_size = 1, 0.0, 4
    config.analysis.figures, config.accelerator.tracker = False, None
    m = run_experiment(config, make_llama(), tokenizer, facts)["metrics"]
    assert m["pushed_away_fraction"] == 0.0 and m["drift_mean"] == 0.0
    assert m["distance_final_mean"] == m["distance_base_mean"] > 0


def test_locality_token_agreement_and_strict_match_greedy(tokenizer, make_llama, facts):
    base = make_llama()
    reference = base_reference(base, tokenizer, facts, tokens=3)
    assert set(reference) == {"unrelated", "neighbourhood"}
    prompts = [p for p, _ in probe_pairs(facts, "neighbourhood")]
    agree, same = locality(base, tokenizer, prompts, reference["neighbourhood"])
    assert agree.tolist() == [1.0] * len(prompts) and same.tolist() == [1.0] * len(prompts)
    wrong_last = [[*r[:2], (r[2] + 1) % len(tokenizer)] for r in reference["neighbourhood"]]
    agree, same = locality(base, tokenizer, prompts, wrong_last)  # 2 of 3 tokens still agree
    assert agree.tolist() == pytest.approx([2 / 3] * len(prompts)) and same.sum() == 0
    other = make_llama()  # a perturbed model: strict locality = greedy continuation unchanged
    torch.manual_seed(3)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    agree, same = locality(other, tokenizer, prompts, reference["neighbourhood"])
    decoded = greedy_decode(other, tokenizer, prompts, 3)
    assert same.tolist() == [float(d == r) for d, r in zip(decoded, reference["neighbourhood"])]
    assert ((agree == 1) == (same == 1)).all() and 0 < agree.mean() < 1
    metrics = evaluate(other, tokenizer, facts, reference, 1)["metrics"]
    assert metrics["locality_neighbourhood_token"] == pytest.approx(float(agree.mean()))
    assert metrics["locality_probes"] == 16 and "locality_unrelated" in metrics


def test_drift_is_measured_on_paraphrases_every_epoch(tokenizer, make_llama, facts, tmp_path):
    config = ExperimentConfig(name="drift", output_dir=str(tmp_path), save_model=False)
    config.train.epochs, config.train.lr, config.train.batch_size = 3, 3e-2, 4
    config.accelerator.tracker = None
    result = run_experiment(config, make_llama(), tokenizer, facts)
    m, drift = result["metrics"], result["details"]["drift"]
    assert set(drift) == {"train", "paraphrase", "unrelated", "neighbourhood"}
    paraphrases = encode_pairs(tokenizer, drift_probe_pairs(facts, facts, 1)["paraphrase"])
    before = fact_pass(make_llama(), paraphrases)["distance"]  # the same base weights, untouched
    after = fact_pass(result["model"], paraphrases)["distance"]
    curve = drift["paraphrase"]
    assert len(curve["mean"]) == 1 + 3 and curve["n"] == len(facts)
    assert curve["mean"][0] == pytest.approx(float(before.mean()), abs=1e-5)
    assert curve["mean"][-1] == pytest.approx(float(after.mean()), abs=1e-5) != curve["mean"][0]
    assert m["paraphrase_pushed_away_fraction"] == pytest.approx(float((after > before).float().mean()))
    assert curve["pushed_away"][-1] == m["paraphrase_pushed_away_fraction"] and curve["pushed_away"][0] == 0
    assert (tmp_path / "drift" / "figure_drift.png").stat().st_size > 10_000
