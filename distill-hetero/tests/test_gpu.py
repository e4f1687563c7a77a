"""CUDA checks, run by the GPU CI job (`-m gpu`): a bf16 training step and a short `train` command."""

import json
import math

import pytest
import torch
from tiny import make_examples, make_teacher, tiny_config
from transformers import AutoModelForCausalLM

from distill_hetero.cli import main
from distill_hetero.trainer import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
ON_GPU = {"accelerator.cpu": False, "accelerator.mixed_precision": "bf16"}


def test_bf16_training_step_on_cuda(tmp_path, teacher, tokenizer):
    cfg = tiny_config(tmp_path, **ON_GPU, **{"train.steps": 2})
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    result = train(cfg, teacher, tokenizer, make_examples(tokenizer, 4), progress=False)
    assert result.accelerator.device.type == "cuda" and result.accelerator.mixed_precision == "bf16"
    assert next(result.distiller.student.parameters()).device.type == "cuda"
    assert all(math.isfinite(h["loss"]) for h in result.history) and len(result.history) == 2
    assert all(torch.equal(before[k], v.cpu()) for k, v in teacher.state_dict().items())  # teacher frozen


def test_train_command_on_cuda_exports_and_scores_a_student(tmp_path, tokenizer):
    teacher_dir = tmp_path / "teacher"
    make_teacher(tokenizer).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(json.dumps({"instruction": f"Question {i}?", "output": "The cow says moo."}) + "\n" for i in range(6))
    )
    run, results = tmp_path / "run", tmp_path / "results.json"
    argv = ["train", "--teacher", str(teacher_dir), "--data.train", str(data), "--eval.datasets", f"[{data}]"]
    argv += ["--student.num_layers", "2", "--student.hidden_size", "16", "--student.num_heads", "2"]
    argv += ["--train.steps", "3", "--train.batch_size", "2", "--eval.sample_seeds", "[1]"]
    argv += ["--eval.max_new_tokens", "4"]
    argv += ["--accelerator.tracker", "none", "--accelerator.mixed_precision", "bf16", "--num_threads", "0"]
    assert main([*argv, "--output_dir", str(run), "--results", str(results)]) == 0
    written = json.loads(results.read_text())
    assert written["config"]["accelerator"]["mixed_precision"] == "bf16" and "cuda" in written["device"].lower()
    assert written["metrics"][f"n/{data}"] == 6 and math.isfinite(written["metrics"]["final_train_loss"])
    assert AutoModelForCausalLM.from_pretrained(run / "student").config.model_type == "gpt2"
