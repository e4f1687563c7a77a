import json
import math

import pytest
from accelerate.state import AcceleratorState
from conftest import TOKENIZER, tiny_model

from lemoe import checkpoint, experiment
from lemoe.cli import main
from lemoe.config import ExperimentConfig
from lemoe.data import load_edits
from shared_utils.config import config_to_dict
from shared_utils.errors import ConfigError


def test_harness_writes_rows_table_figure_and_readme(tmp_path, monkeypatch):
    monkeypatch.setattr(
        experiment, "load_model", lambda name, device, device_map="none": (tiny_model("llama"), TOKENIZER)
    )
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\nold\n<!-- results:end -->\n")
    data = tmp_path / "edits.jsonl"
    rows = [
        {
            "prompt": f"fact {c} is",
            "target": c * 2,
            "rephrase": f"the fact {c} is",
            "locality_prompt": f"other {c}",
            "locality_answer": "ok",
            "subject": f"fact {c}",
        }
        for c in "abcdef"
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = ExperimentConfig(
        model="tiny",
        data=str(data),
        num_edits=6,
        batch_size=3,
        output_dir=str(tmp_path / "out"),
        readme=str(readme),
        save_adaptor=str(tmp_path / "adaptor"),
    )
    cfg.lemoe.adaptor.layer, cfg.lemoe.adaptor.expert_width, cfg.lemoe.router.dim = 1, 16, 8
    cfg.lemoe.train.max_steps, cfg.lemoe.train.lr, cfg.lemoe.train.progress = 30, 1e-2, False
    cfg.plan.embedder = "model"
    experiment.run_experiment(cfg)
    out = tmp_path / "out"
    names = {p.stem for p in out.glob("*.json")}
    assert names == {
        "lemoe",
        "lemoe_gate_none",
        "lemoe_gate_calibrated",
        "lemoe_gate_subject",
        "lemoe_subject",
        "lemoe_random",
        "token_moe",
        "ft_l",
        "lora",
        "grace",
        "wise",
        "unedited",
    }
    lemoe = json.loads((out / "lemoe.json").read_text())
    assert [c["edits"] for c in lemoe["curve"]] == [3, 6]
    teacher_forced = {"edits", "rel", "gen", "loc", "avg", "rel_em", "gen_em"}
    generated = {f"{kind}_gen_{score}" for kind in ("rel", "gen", "loc") for score in ("em", "f1")}
    fluency = {"repetition", "repetition_unedited", "repetition_phrase", "repetition_phrase_unedited"}
    fluency |= {"ppl", "ppl_unedited", "ppl_ratio"}
    assert set(lemoe["metrics"]) == teacher_forced | generated | fluency  # no wall-clock numbers
    assert set(lemoe["timing"]) == {"train_s", "edits_per_s"}
    assert lemoe["metrics"]["avg"] == pytest.approx(
        (lemoe["metrics"]["rel"] + lemoe["metrics"]["gen"] + lemoe["metrics"]["loc"]) / 3
    )
    assert lemoe["metrics"]["rel"] > 0.5
    table = (out / "table.md").read_text()
    assert "| LoRA (peft) |" in table and table.strip() in readme.read_text()
    assert (out / "metrics_vs_edits.png").stat().st_size > 1000 and (out / "config.yaml").exists()
    assert (out / "batch_cost.png").stat().st_size > 1000
    # per batch: the edits of that batch plus the replayed ones, each batch timed
    batches = lemoe["batches"]
    assert [b["batch"] for b in batches] == [1, 2] and [b["edits"] for b in batches] == [3, 3]
    assert all(b["sequences"] >= b["edits"] and b["train_s"] > 0 for b in batches)
    assert [b["steps"] for b in batches] == lemoe["steps_per_batch"]
    # the unedited model: trains nothing, keeps every locality answer, is the fluency reference
    unedited = json.loads((out / "unedited.json").read_text())
    assert unedited["steps_per_batch"] == [0, 0] and unedited["timing"]["edits_per_s"] is None
    assert unedited["metrics"]["loc"] == 1.0 and unedited["metrics"]["ppl_ratio"] == 1.0
    assert unedited["metrics"]["repetition"] == unedited["metrics"]["repetition_unedited"]
    assert "| Unedited model (trivial baseline) |" in table
    # the final model's texts behind the generation-based scores, one per edit
    samples = lemoe["samples"]
    assert sorted(s["prompt"] for s in samples) == sorted(r.prompt for r in load_edits(str(data), limit=6))
    assert all(s["rel_greedy"] and s["continuation"] for s in samples)
    assert {"target", "rephrase", "gen_greedy", "locality_prompt", "loc_greedy", "loc_unedited"} <= set(samples[0])
    # `lemoe eval` on the saved adaptor reproduces the final LEMoE row
    scores = experiment.evaluate_saved(str(tmp_path / "adaptor"), "tiny", str(data), limit=6, batch_size=32)
    for key in ("rel", "gen", "loc"):
        assert scores[key] == pytest.approx(lemoe["metrics"][key], abs=1e-9), key
    # a later part of the same experiment (fewer methods) keeps the earlier parts' rows in the table
    cfg.methods, cfg.readme, cfg.save_adaptor = ["ft_l"], None, None
    experiment.run_experiment(cfg)
    table = (out / "table.md").read_text()
    assert "| FT-L |" in table and "| LEMoE (KV anchor" in table
    # another experiment (here: another step budget) into the same folder tabulates its own rows only
    cfg.lemoe.train.max_steps = 5
    experiment.run_experiment(cfg)
    table = (out / "table.md").read_text()
    assert "| FT-L |" in table and "LEMoE" not in table and (out / "lemoe.json").exists()


def test_subject_methods_need_subjects_and_say_which_record_lacks_one(tmp_path):
    data = tmp_path / "edits.jsonl"
    rows = [{"prompt": "p", "target": "t", "rephrase": "r", "locality_prompt": "l", "locality_answer": "a"}]
    data.write_text(json.dumps({**rows[0], "subject": "p"}) + "\n" + json.dumps(rows[0]) + "\n")
    cfg = ExperimentConfig(
        model="tiny", data=str(data), num_edits=2, batch_size=1, methods=["lemoe_subject"], output_dir=str(tmp_path)
    )
    with pytest.raises(ConfigError, match=r"edit 1 \(0-based, among the valid records\) of .*edits.jsonl has none"):
        experiment.run_experiment(cfg)
    cfg.methods = ["lemoe", "ft_l"]  # prompt pooling with the similarity gate needs no subjects
    cfg.lemoe.router.null_threshold = "calibrated"
    experiment.check_subjects(experiment.load_edits(str(data)), cfg)
    cfg.lemoe.router.null_threshold = "subject"
    with pytest.raises(ConfigError, match=r"\['lemoe'\] need the subject"):
        experiment.check_subjects(experiment.load_edits(str(data)), cfg)


def test_cli_rejects_unknown_option_by_name(capsys):
    assert main(["edit", "--lemoe.router.top_kk", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lemoe: error: unknown option(s) for RouterConfig: lemoe.router.top_kk.")
    assert len(err.strip().splitlines()) == 1


def test_headline_row_runs_on_records_without_a_subject(tmp_path, monkeypatch):
    monkeypatch.setattr(
        experiment, "load_model", lambda name, device, device_map="none": (tiny_model("llama"), TOKENIZER)
    )
    data = tmp_path / "edits.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "prompt": f"q{c} is",
                    "target": c,
                    "rephrase": f"q{c} be",
                    "locality_prompt": "z",
                    "locality_answer": "y",
                }
            )
            for c in "ab"
        )
    )
    cfg = ExperimentConfig(
        model="tiny", data=str(data), num_edits=2, batch_size=1, methods=["lemoe"], output_dir=str(tmp_path / "o")
    )
    assert cfg.lemoe.router.null_threshold == "activation"  # the default, headline gate
    cfg.lemoe.adaptor.layer, cfg.lemoe.adaptor.expert_width, cfg.lemoe.router.dim = 1, 16, 8
    cfg.lemoe.train.max_steps, cfg.lemoe.train.progress, cfg.plan.embedder = 5, False, "model"
    experiment.run_experiment(cfg)
    row = json.loads((tmp_path / "o" / "lemoe.json").read_text())
    assert row["gate"] == "activation" and "subject" not in row["label"]
    # the subject-string view is left out (no subjects), the two other gates are scored on the same experts
    assert {p.stem for p in (tmp_path / "o").glob("*.json")} == {"lemoe", "lemoe_gate_none", "lemoe_gate_calibrated"}
    cfg.gate_views, cfg.output_dir = False, str(tmp_path / "headline_only")  # one scoring of the final model
    experiment.run_experiment(cfg)
    assert {p.stem for p in (tmp_path / "headline_only").glob("*.json")} == {"lemoe"}
    assert json.loads((tmp_path / "headline_only" / "lemoe.json").read_text())["metrics"] == row["metrics"]


def test_every_method_edits_under_bf16_autocast_and_logs_each_batch_to_the_tracker(tmp_path, monkeypatch, request):
    """accelerate's bf16 autocast (the GPU default, here on the CPU) reaches every forward of every
    method without a dtype clash; trained parameters stay fp32; the tracker gets one record per batch."""
    monkeypatch.setattr(
        experiment, "load_model", lambda name, device, device_map="none": (tiny_model("llama"), TOKENIZER)
    )
    logged: list[dict] = []
    real_build = experiment.build_accelerator

    def build(config, **kwargs):
        accelerator = real_build(config, **kwargs)
        monkeypatch.setattr(accelerator, "log", lambda values, step=None: logged.append(values))
        return accelerator

    monkeypatch.setattr(experiment, "build_accelerator", build)
    AcceleratorState._reset_state(reset_partial_state=True)  # accelerate keeps one precision per process
    request.addfinalizer(lambda: AcceleratorState._reset_state(reset_partial_state=True))
    data = tmp_path / "edits.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "prompt": f"q{c} is",
                    "target": c * 2,
                    "rephrase": f"q{c} be",
                    "locality_prompt": "z",
                    "locality_answer": "y",
                    "subject": f"q{c}",
                }
            )
            for c in "abcd"
        )
    )
    cfg = ExperimentConfig(model="tiny", data=str(data), num_edits=4, batch_size=2, output_dir=str(tmp_path / "o"))
    cfg.methods = ["lemoe", "token_moe", "ft_l", "lora", "grace", "wise"]
    cfg.accelerator.mixed_precision, cfg.accelerator.cpu, cfg.eval_each_batch = "bf16", True, False
    cfg.lemoe.adaptor.layer, cfg.lemoe.adaptor.expert_width, cfg.lemoe.router.dim = 1, 16, 8
    cfg.lemoe.train.max_steps, cfg.lemoe.train.progress, cfg.plan.embedder = 3, False, "model"
    cfg.lemoe.train.continuation_weight = 0.5  # the anti-hijack term's extra head call too
    experiment.run_experiment(cfg)
    for method in cfg.methods:
        row = json.loads((tmp_path / "o" / f"{method}.json").read_text())
        assert all(math.isfinite(v) for v in row["metrics"].values()), method
        batches = [r for r in logged if f"{method}/nll" in r]
        assert [r[f"{method}/steps"] for r in batches] == [b["steps"] for b in row["batches"]], method
        assert any(f"{method}/final/rel" in r for r in logged), method


def test_gradient_accumulation_is_refused_by_name(capsys):
    assert main(["edit", "--accelerator.gradient_accumulation_steps", "4"]) == 2
    err = capsys.readouterr().err
    assert "accelerator.gradient_accumulation_steps=4" in err and len(err.strip().splitlines()) == 1


def test_stopped_and_resumed_run_gives_the_numbers_of_an_uninterrupted_one(tmp_path, monkeypatch):
    monkeypatch.setattr(
        experiment, "load_model", lambda name, device, device_map="none": (tiny_model("llama"), TOKENIZER)
    )
    data = tmp_path / "edits.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "prompt": f"fact {c} is",
                    "target": c * 2,
                    "rephrase": f"the fact {c} is",
                    "locality_prompt": f"other {c}",
                    "locality_answer": "ok",
                }
            )
            for c in "abcd"
        )
    )

    def config(out: str, **kw) -> ExperimentConfig:
        cfg = ExperimentConfig(
            model="tiny",
            data=str(data),
            num_edits=4,
            batch_size=1,
            methods=["lemoe", "wise", "grace", "lora", "ft_l", "alphaedit"],
            output_dir=str(tmp_path / out),
            **kw,
        )
        cfg.lemoe.adaptor.layer, cfg.lemoe.adaptor.expert_width, cfg.lemoe.router.dim = 1, 16, 8
        cfg.lemoe.adaptor.max_experts = 3  # the last batch trains the last expert again, with replay
        cfg.lemoe.train.max_steps, cfg.lemoe.train.progress = 8, False
        cfg.plan.embedder = "model"
        return cfg

    experiment.run_experiment(config("straight"))
    parts = config("parts", stop_after_batches=2)
    experiment.run_experiment(parts)  # batches 1-2
    assert not list((tmp_path / "parts").glob("*.json"))
    assert sorted(p.name for p in (tmp_path / "parts" / "checkpoints").iterdir()) == sorted(
        [f"{m}.pt" for m in parts.methods] + ["eval_sets.pt"]
    )
    # later parts take the evaluation sets and batch plans the first one saved
    monkeypatch.setattr(experiment, "prepare_run", lambda *a, **k: pytest.fail("eval sets prepared again"))
    with pytest.raises(ConfigError, match=r"config differs in lemoe.train.lr: 0.01 -> 0.02"):
        bad = config("parts", stop_after_batches=2)
        bad.lemoe.train.lr = 2e-2
        experiment.run_experiment(bad)
    experiment.run_experiment(parts)  # batches 3-4, stops before scoring
    assert not list((tmp_path / "parts").glob("*.json"))
    experiment.run_experiment(parts)  # scores the final models
    assert [p.name for p in (tmp_path / "parts" / "checkpoints").iterdir()] == ["eval_sets.pt"]
    straight = {p.name: json.loads(p.read_text()) for p in (tmp_path / "straight").glob("*.json")}
    resumed = {p.name: json.loads(p.read_text()) for p in (tmp_path / "parts").glob("*.json")}
    assert sorted(resumed) == sorted(straight) and "lemoe_gate_none.json" in resumed
    for name, row in straight.items():
        for key in ("metrics", "curve", "samples", "steps_per_batch"):
            assert resumed[name][key] == row[key], (name, key)
    assert "| GRACE (codebook) |" in (tmp_path / "parts" / "table.md").read_text()
    # `lemoe render` rebuilds the same table from the row files alone
    table = (tmp_path / "parts" / "table.md").read_text()
    (tmp_path / "parts" / "table.md").unlink()
    readme = tmp_path / "README.md"
    readme.write_text("<!-- t:start -->\n<!-- t:end -->\n")
    assert main(["render", str(tmp_path / "parts"), "--readme", str(readme), "--section", "t"]) == 0
    assert (tmp_path / "parts" / "table.md").read_text() == table and table.strip() in readme.read_text()
    assert main(["render", str(tmp_path / "nothing")]) == 2


def test_a_row_belongs_to_the_experiment_whose_options_it_shares():
    cfg = ExperimentConfig()
    saved = config_to_dict(cfg)
    saved["methods"], saved["stop_after_batches"] = ["wise"], 25  # another part of the same experiment
    del saved["gate_views"]  # written before the option existed
    assert checkpoint.same_experiment(saved, cfg)
    saved["lemoe"]["train"]["progress"] = not cfg.lemoe.train.progress  # display only
    assert checkpoint.same_experiment(saved, cfg)
    saved["lemoe"]["train"]["lr"] = 0.5
    assert not checkpoint.same_experiment(saved, cfg) and not checkpoint.same_experiment(None, cfg)


def test_edit_that_stops_before_any_row_exits_cleanly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(experiment, "run_experiment", lambda cfg: None)  # every method stopped: no table yet
    assert main(["edit", "--config", "tiny", "--output_dir", str(tmp_path), "--stop_after_batches", "1"]) == 0
    assert "run the same command again" in capsys.readouterr().out
