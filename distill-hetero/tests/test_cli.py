import json

import yaml
from tiny import make_teacher
from transformers import AutoModelForCausalLM

from distill_hetero.cli import main


def test_cli_train_exports_a_student_and_saves_mapping_and_config(tmp_path, tokenizer):
    teacher_dir = tmp_path / "teacher"
    make_teacher(tokenizer).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"instruction": f"Question {i}?", "input": "", "output": "The cow says moo."}) + "\n"
            for i in range(6)
        )
    )
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--teacher",
            str(teacher_dir),
            "--data.train",
            str(data),
            "--student.num_layers",
            "2",
            "--student.hidden_size",
            "16",
            "--student.num_heads",
            "2",
            "--train.steps",
            "2",
            "--train.batch_size",
            "2",
            "--train.teacher_cache_top_k",
            "0",
            "--accelerator.tracker",
            "none",
            "--accelerator.cpu",
            "true",
            "--num_threads",
            "0",
            "--eval.datasets",
            "[]",
            "--output_dir",
            str(run),
        ]
    )
    assert code == 0
    assert json.loads((run / "mapping.json").read_text())["pairs"] == [[0, 0], [1, 2], [2, 4]]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["train"] == str(data) and saved["loss"]["weighting"] == "uncertainty"
    student = AutoModelForCausalLM.from_pretrained(run / "student")
    assert student.config.model_type == "gpt2" and student.config.vocab_size == len(tokenizer)


def test_summarize_averages_rows_over_seed_folders(tmp_path, capsys):
    for seed, (nll, rouge) in enumerate([(4.0, 20.0), (3.0, 30.0)]):
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        (folder / "kd_fkl.json").write_text(
            json.dumps(
                {
                    "row": "kd_fkl",
                    "label": "KD",
                    "metrics": {
                        "heldout_nll/builtin": nll,
                        "rougeL_greedy/builtin": rouge,
                        "rougeL_greedy/dolly_test": 2.0,
                        "rougeL_greedy/vicuna_test": 4.0,
                    },
                }
            )
        )
    assert main(["summarize", str(tmp_path / "s0"), str(tmp_path / "s1"), "--output", str(tmp_path / "t.md")]) == 0
    line = next(x for x in (tmp_path / "t.md").read_text().splitlines() if x.startswith("| KD"))
    assert "3.50 (4.00, 3.00)" in line and "25.00 (20.00, 30.00)" in line and "3.00 (3.00, 3.00)" in line
