"""Integration with the embedded SmolLM2-135M-Instruct teacher (slow: loads 135M parameters)."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from distill_hetero.config import RunConfig
from distill_hetero.data import format_prompt, tokenize_example
from distill_hetero.models import load_teacher
from distill_hetero.trainer import export_student, train
from shared_utils.config import load_config
from shared_utils.models import EmbeddedModelMissing


@pytest.fixture(scope="module")
def smollm2():
    try:
        return load_teacher("smollm2-135m-instruct")
    except EmbeddedModelMissing as err:
        pytest.skip(str(err))


@pytest.mark.slow
def test_smollm2_tokenizer_round_trip(smollm2):
    _, tokenizer = smollm2
    ids = tokenizer("The capital of France is Paris", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis", "ĠParis"]
    assert tokenizer.decode(ids) == "The capital of France is Paris"


@pytest.mark.slow
def test_two_steps_of_smollm2_into_a_gpt2_student(tmp_path, smollm2):
    teacher, tokenizer = smollm2
    cfg = load_config(
        RunConfig,
        None,
        {
            "student.num_layers": 2,
            "student.hidden_size": 32,
            "student.num_heads": 2,
            "student.init": "teacher_pca",  # the from-scratch GPT-2 option
            "train.steps": 2,
            "train.batch_size": 2,
            "accelerator.tracker": None,
            "accelerator.cpu": True,
            "output_dir": str(tmp_path),
        },
    )
    examples = [
        tokenize_example(tokenizer, i, format_prompt(q), a, 64, 8)
        for i, (q, a) in enumerate(
            [
                ("What is the capital of France?", "Paris."),
                ("Name a color.", "Blue."),
                ("What is 2 plus 2?", "4."),
                ("What sound does a dog make?", "Woof."),
            ]
        )
    ]
    before = teacher.model.layers[15].mlp.down_proj.weight.clone()
    result = train(cfg, teacher, tokenizer, examples, progress=False)
    assert result.mapping == [(0, 0), (1, 15), (2, 30)]
    assert result.distiller.align.projectors["s1_t15"].weight.shape == (576, 32)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    assert torch.equal(before, teacher.model.layers[15].mlp.down_proj.weight)
    student = AutoModelForCausalLM.from_pretrained(export_student(result, tokenizer, tmp_path / "student"))
    assert student.config.model_type == "gpt2" and student.config.vocab_size == len(tokenizer) == 49152
