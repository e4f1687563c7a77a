import pytest
import torch
from tiny import tiny_config

from distill_hetero.generation import generate
from distill_hetero.models import build_student


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_left_padded_batch_generates_what_each_prompt_generates_alone(tmp_path, tokenizer, family):
    torch.manual_seed(0)
    cfg = tiny_config(tmp_path, **{"student.family": family, "student.intermediate_size": 32})
    model = build_student(cfg.student, tokenizer).eval()
    prompts = ["The cat", "### Instruction: What is the capital of France? ### Response:", "Two plus"]
    batched = generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=3)
    alone = [generate(model, tokenizer, [p], max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert batched == alone


def test_sampling_is_seeded(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = build_student(tiny_config(tmp_path).student, tokenizer).eval()
    run = lambda seed: generate(model, tokenizer, ["The cat", "Two plus"], 8, do_sample=True, seed=seed)  # noqa: E731
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_heldout_nll_equals_the_models_own_label_loss(tmp_path, tokenizer):
    from distill_hetero.data import Record, collate, format_prompt
    from distill_hetero.experiment import heldout_nll, tokenize_records

    torch.manual_seed(0)
    cfg = tiny_config(tmp_path)
    model = build_student(cfg.student, tokenizer).eval()
    records = [Record(format_prompt("What is the capital of France?"), ["Paris."])]
    batch = collate(tokenize_records(cfg, tokenizer, records), tokenizer.pad_token_id)
    expected = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    assert heldout_nll(model, tokenizer, records, cfg) == pytest.approx(float(expected.detach()), rel=1e-5)
