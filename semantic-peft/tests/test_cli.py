import json
import subprocess
import sys

import pytest

from semantic_peft.cli import DEFAULT_CONFIG, main
from semantic_peft.config import ExperimentConfig
from semantic_peft.reproduce import read_rows, write_table
from shared_utils.config import ConfigError, load_config


def test_help_lists_the_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "semantic_peft", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("analyze", "train", "eval", "bench", "reproduce"):
        assert command in out


def test_dataclass_defaults_match_default_yaml():
    from shared_utils.config import config_to_dict

    yaml_config = config_to_dict(load_config(ExperimentConfig, DEFAULT_CONFIG))
    defaults = config_to_dict(ExperimentConfig())
    yaml_config["peft"]["target_modules"] = defaults["peft"]["target_modules"] = None
    yaml_config["num_threads"] = defaults["num_threads"] = 0
    assert yaml_config == defaults


def test_default_config_and_rows_resolve():
    config = load_config(ExperimentConfig, DEFAULT_CONFIG)
    assert config.model == "smollm2-135m-instruct" and config.data.builtin_per_relation * 8 >= 200
    assert config.peft.target_modules[:2] == ["q_proj", "k_proj"]
    base, rows = read_rows(DEFAULT_CONFIG.parent / "reproduce.yaml")
    assert base == DEFAULT_CONFIG
    assert [r["name"] for r in rows] == [
        "lora",
        "lora_filter",
        "lora_reweight",
        "lora_filter_reweight",
        "full_ft",
        "lora_reweight_linear",
    ]
    paper_base, paper_rows = read_rows(DEFAULT_CONFIG.parent / "paper" / "reproduce.yaml")
    assert load_config(ExperimentConfig, paper_base).model == "meta-llama/Llama-2-7b-hf" and len(paper_rows) == 5
    with pytest.raises(ConfigError, match=r"reweight\.shceme"):
        load_config(ExperimentConfig, DEFAULT_CONFIG, ["--reweight.shceme", "linear"])


def test_train_and_eval_end_to_end(tmp_path, tokenizer, make_llama):
    model_dir = tmp_path / "tiny"
    make_llama().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    facts = tmp_path / "facts.jsonl"
    facts.write_text(
        "\n".join(
            json.dumps(
                {
                    "prompt": p,
                    "target": t,
                    "paraphrases": [q],
                    "unrelated": [{"prompt": "The sky is", "target": "blue"}],
                }
            )
            for p, t, q in [
                ("Alice lives in", "Wonderland", "Alice's home is"),
                ("Bob owns a red", "car", "Bob owns a"),
            ]
        )
        + "\n"
    )
    common = [
        "--model",
        str(model_dir),
        "--data.source",
        str(facts),
        "--output_dir",
        str(tmp_path / "runs"),
        "--accelerator.tracker",
        "none",
        "--peft.target_modules",
        "[q_proj, v_proj]",
    ]
    assert main(["train", *common, "--train.epochs", "2", "--train.batch_size", "2", "--name", "cli"]) == 0
    results = json.loads((tmp_path / "runs" / "cli" / "results.json").read_text())
    assert results["metrics"]["trained_facts"] == 2 and results["metrics"]["optimizer_steps"] == 2
    assert results["config"]["data"]["source"] == str(facts)
    adapter = tmp_path / "runs" / "cli" / "adapter"
    assert main(["eval", *common, "--adapter", str(adapter), "--out", str(tmp_path / "eval.json")]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["metrics"]["train_em"] == results["metrics"]["train_em"]
    assert evaluated["metrics"]["para_acc"] == results["metrics"]["para_acc"]
    assert main(["analyze", *common, "--adapter", str(adapter), "--out", str(tmp_path / "an.json")]) == 0
    analysis = json.loads((tmp_path / "an.json").read_text())
    final = results["details"]["distance_trajectory_mean"][-1]
    assert analysis["metrics"]["distance_final_mean"] == pytest.approx(final, abs=1e-5)


def test_table_is_generated_from_results(tmp_path):
    from shared_utils.results import write_results

    write_results(tmp_path / "00_base.json", {"train_em": 0.0, "locality": 1.0}, extra={"label": "Base", "facts": 3})
    write_results(
        tmp_path / "01_lora.json",
        {"train_em": 0.5, "train_em_trained": 0.5, "locality": 0.75},
        extra={"label": "LoRA", "facts": 3},
    )
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- results:start -->\nold\n<!-- results:end -->\ny\n")
    write_table(tmp_path, readme)
    table = (tmp_path / "table.md").read_text()
    assert "| Base | – | – | 0.000 |" in table and "| LoRA | – | **0.500** | **0.500** |" in table
    assert "old" not in readme.read_text() and "| LoRA |" in readme.read_text()


def test_reproduction_rows_errors_and_overrides(tmp_path):
    from semantic_peft.reproduce import _flatten

    rows = tmp_path / "rows.yaml"
    rows.write_text("base: default.yaml\nrows:\n  - name: a\n  - label: no name\n")
    with pytest.raises(ConfigError, match="row 1 needs a 'name'"):
        read_rows(rows)
    flat = _flatten({"peft": {"method": "full"}, "train": {"lr": 1.0e-4}, "save_model": False})
    assert flat == ["--peft.method", "full", "--train.lr", "0.0001", "--save_model", "false"]
    config = load_config(ExperimentConfig, DEFAULT_CONFIG, flat)
    assert (config.peft.method, config.train.lr, config.save_model) == ("full", 1e-4, False)
