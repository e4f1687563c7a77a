"""Evaluation protocol: prompts keep their instruction when truncated, bootstrap intervals, trivial
baselines, per-example outputs, and a table that refuses rows of different commits."""

import json

import pytest

from distill_hetero import experiment
from distill_hetero.config import RunConfig
from distill_hetero.data import fit_prompt, format_prompt, parse_record
from distill_hetero.experiment import baseline_metrics, render_outputs, training_records
from shared_utils.errors import ConfigError


def _length(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_the_instruction_survives_truncation(tokenizer):
    instruction = "What is the capital of France?"
    context = " ".join(["The cat sleeps on the sofa."] * 60)
    record = parse_record({"instruction": instruction, "input": context, "output": "Paris."}, 0)
    budget = _length(tokenizer, format_prompt(instruction, "The cat sleeps ...")) + 20
    assert _length(tokenizer, record.prompt) > budget + 100
    fitted = fit_prompt(tokenizer, record, budget)
    assert _length(tokenizer, fitted.prompt) <= budget
    assert f"### Instruction:\n{instruction}\n\n### Input:\nThe cat sleeps" in fitted.prompt
    assert fitted.prompt.endswith("...\n\n### Response:\n") and fitted.references == ["Paris."]
    # the old left cut would have dropped the instruction
    left_cut = tokenizer.decode(tokenizer(record.prompt, add_special_tokens=False)["input_ids"][-budget:])
    assert instruction not in left_cut
    assert fit_prompt(tokenizer, record, 10_000) is record  # a prompt that fits is not touched


def test_trivial_baselines_score_constant_and_echoed_answers():
    records = [
        parse_record({"instruction": "Say the answer is five.", "output": "The answer is five."}, 0),
        parse_record({"instruction": "Name a fruit.", "output": "apple"}, 1),
    ]
    metrics, examples = baseline_metrics("constant", {"toy": records})
    assert [e["output"] for e in examples["toy"]["greedy"]] == ["The answer is"] * 2
    assert metrics["rougeL_greedy/toy"] == pytest.approx(100 * (2 * 3 / 7) / 2)  # F1 of 3 of 4 words, and 0
    metrics, examples = baseline_metrics("echo", {"toy": records})
    assert examples["toy"]["greedy"][1]["output"] == "Name a fruit." and metrics["n/toy"] == 2


def _row(path, name, commit, score, **extra):
    path.write_text(
        json.dumps(
            {
                "row": name,
                "label": name,
                "git_commit": commit,
                "metrics": {"rougeL_greedy/toy": score, "rougeL_greedy_ci/toy": [score - 1, score + 1], "n/toy": 2},
                "examples": {"toy": {"greedy": [{"output": "x", "rougeL": score}] * 2}},
                **extra,
            }
        )
    )


def test_table_shows_intervals_and_refuses_rows_of_different_commits(tmp_path):
    _row(tmp_path / "kd_fkl.json", "kd_fkl", "abc", 5.0)
    _row(tmp_path / "kd_inter_fixed.json", "kd_inter_fixed", "abc", 7.0)
    table = render_outputs(tmp_path)
    assert "5.00 [4.00, 6.00]" in table and "+2.00 [+2.00, +2.00]" in table and "commit `abc`" in table
    _row(tmp_path / "sft.json", "sft", "def", 1.0)
    with pytest.raises(ConfigError, match=r"different commits .*sft: def"):
        render_outputs(tmp_path)
    assert RunConfig().data.cache_dir.startswith("runs/")  # no teacher answers shared across checkouts


def test_sampled_table_names_the_seeds_not_their_intervals(tmp_path):
    _row(tmp_path / "kd_fkl.json", "kd_fkl", "abc", 5.0)
    row = json.loads((tmp_path / "kd_fkl.json").read_text())
    for seed in (1, 2):
        row["metrics"].update({f"rougeL_seed{seed}/toy": 4.0, f"rougeL_seed{seed}_ci/toy": [3.0, 5.0]})
    row["metrics"].update({"rougeL_sampled/toy": 4.0, "rougeL_sampled_ci/toy": [3.0, 5.0]})
    (tmp_path / "kd_fkl.json").write_text(json.dumps(row))
    assert "per-example mean over seeds 1, 2;" in render_outputs(tmp_path)


def test_loss_ratio_figure_has_a_line_per_ratio_of_each_weighting_row(tmp_path, monkeypatch):
    ratios = {  # per row: each loss's ratio after steps 1, 2, 3
        "kd_fkl": {"fkl": [1.0] * 3},
        "kd_inter_fixed": {"fkl": [1.0] * 3, "inter": [1.0] * 3},
        "kd_inter_learned": {"fkl": [0.99, 0.98, 0.97], "inter": [1.01, 1.02, 1.03]},
        "kd_inter_dwa": {"fkl": [1.0, 0.9, 0.95], "inter": [1.0, 1.1, 1.05]},
    }
    for name, weights in ratios.items():
        history = [
            {"step": t + 1, "loss/fkl": 1.0, **{f"weight/{n}": w[t] for n, w in weights.items()}} for t in range(3)
        ]
        _row(tmp_path / f"{name}.json", name, "abc", 5.0, history=history)
    drawn = {}
    real_save = experiment.save_figure

    def keep_lines(fig, path, **kwargs):
        drawn[path.name] = {
            ax.get_title(): {ln.get_label(): list(ln.get_ydata()) for ln in ax.lines} for ax in fig.axes
        }
        return real_save(fig, path, **kwargs)

    monkeypatch.setattr(experiment, "save_figure", keep_lines)
    table = render_outputs(tmp_path)
    assert (tmp_path / "loss_ratios.png").stat().st_size > 0
    weighted = ["kd_inter_fixed", "kd_inter_learned", "kd_inter_dwa"]  # kd_fkl has a single loss, no ratio
    assert drawn["loss_ratios.png"] == {
        f"ratio of loss {n}": {row: ratios[row][n] for row in weighted} for n in ("fkl", "inter")
    }
    assert "| kd_inter_dwa − KD | +0.00 [+0.00, +0.00] |" in table


def test_a_training_file_with_some_outputs_missing_is_an_error_naming_them(tmp_path, tokenizer):
    path = tmp_path / "train.jsonl"
    rows = [{"instruction": f"Say {i}.", "input": "", "output": f"{i}"} for i in range(4)]
    rows[1].pop("output")
    rows[3].pop("output")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = RunConfig()
    cfg.data.train = str(path)
    with pytest.raises(ConfigError, match=r"2 of 4 records have no output \(records 1, 3\).*--data\.targets teacher"):
        training_records(cfg, None, tokenizer)


def test_a_part_is_compared_with_the_reference_kd_row_of_another_commit(tmp_path):
    main, part = tmp_path / "main", tmp_path / "part"
    main.mkdir()
    part.mkdir()
    _row(main / "kd_fkl.json", "kd_fkl", "abc", 5.0)
    _row(part / "kd_uld_inter.json", "kd_uld_inter", "def", 8.0)
    with pytest.raises(ConfigError, match="no kd_fkl row"):
        render_outputs(part, reference=part)
    table = render_outputs(part, reference=main)
    assert "commit `def` but the reference KD row" in table and "(commit `abc`)" in table
    assert "kd_uld_inter − KD | +3.00 [+3.00, +3.00]" in table
