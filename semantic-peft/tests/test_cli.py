import json
import subprocess
import sys

import pytest

from semantic_peft.cli import DEFAULT_CONFIG, DEFAULT_ROWS, PACKAGE, build_parser, main
from semantic_peft.config import ExperimentConfig
from semantic_peft.reproduce import part_rows, read_parts, read_rows, row_overrides, write_table
from shared_utils.config import ConfigError, diff_configs, flatten_config, load_config, resolve_config_path


def test_help_lists_the_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "semantic_peft", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("analyze", "train", "eval", "bench", "reproduce"):
        assert command in out


def test_shipped_default_equals_dataclass_defaults_and_help(capsys):
    shipped = load_config(ExperimentConfig, DEFAULT_CONFIG, package=PACKAGE)
    assert shipped == ExperimentConfig() and diff_configs(shipped, ExperimentConfig()) == []
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for key, value in flatten_config(shipped).items():
        assert f"--{key} (default: {value!r})" in help_text
    assert "--num_threads (default: 1)" in help_text and "--train.lr (default: 0.004)" in help_text


def test_default_config_and_rows_resolve_by_name():
    config = load_config(ExperimentConfig, DEFAULT_CONFIG, package=PACKAGE)
    assert config.model == "smollm2-135m-instruct" and config.data.builtin_per_relation * 8 >= 200
    assert config.peft.target_modules[:2] == ["q_proj", "k_proj"]
    base, rows = read_rows(DEFAULT_ROWS)
    assert base == resolve_config_path(PACKAGE, DEFAULT_CONFIG)
    assert [r["name"] for r in rows] == [
        "lora",
        "lora_filter",
        "lora_reweight",
        "lora_filter_reweight",
        "full_ft",
        "ia3",
        "prompt_tuning",
        "prefix_tuning",
    ]
    paper_base, paper_rows = read_rows("paper/reproduce")
    paper = load_config(ExperimentConfig, paper_base)
    assert paper.model == "meta-llama/Llama-2-7b-hf" and len(paper_rows) == 5
    assert (paper.peft.r, paper.num_threads) == (16, 0)
    ia3 = load_config(ExperimentConfig, "paper/llama2_7b_ia3", package=PACKAGE)
    assert ia3.peft.target_modules is None  # peft's own IA3 modules, not the LoRA default list
    with pytest.raises(ConfigError, match=r"reweight\.shceme"):
        load_config(ExperimentConfig, DEFAULT_CONFIG, ["--reweight.shceme", "linear"], package=PACKAGE)


def test_reproduce_defaults_touch_no_tracked_path():
    args = build_parser().parse_args(["reproduce"])
    assert args.readme is None
    assert args.results == "runs/semantic-peft/reproduce" and args.rows == "reproduce"


def _fail_if_called(*args, **kwargs):
    raise AssertionError("the model loader must not be reached")


@pytest.fixture
def no_model(monkeypatch):
    """Make loading a model (or a hub dataset) an error: a user error must stop the command first."""
    import datasets

    monkeypatch.setattr("semantic_peft.experiment.load_model", _fail_if_called)
    monkeypatch.setattr(datasets, "load_dataset", _fail_if_called)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("semantic-peft: error: ")
    return err


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--peft.method", "lorra", ["peft.method", "'lora'", "'ia3'", "'full'"]),
        ("--reweight.scheme", "cubic", ["reweight.scheme", "'linear'", "'softmax'", "'focal'"]),
        ("--data.format", "csv", ["data.format", "'zsre'", "'counterfact'"]),
        ("--train.epoch", "3", ["unknown option", "train.epoch", "train.epochs"]),
        ("--train.lr", "fast", ["train.lr", "float", "fast"]),
        ("--filter.quantile", "1.5", ["filter.quantile", "(0, 1]"]),
    ],
)
def test_config_mistakes_are_one_line_before_any_model(option, value, named, no_model, capsys):
    assert main(["train", option, value]) == 2
    err = _one_line_error(capsys)
    assert all(part in err for part in named), err


def _facts_file(tmp_path, lines: list[str]):
    path = tmp_path / "facts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps({"prompt": "Alice lives in", "target": "Wonderland"})


@pytest.mark.parametrize(
    ("lines", "named"),
    [
        ([GOOD, "{not json"], ["facts.jsonl line 2: not valid JSON"]),
        ([GOOD, json.dumps({"prompt": "Bob owns a red", "target": ""})], ["facts.jsonl", "record 1 field 'target'"]),
        ([GOOD, "[1, 2]"], ["facts.jsonl", "record 1 must be a JSON object"]),
    ],
)
def test_data_mistakes_name_file_and_record(lines, named, tmp_path, no_model, capsys):
    path = _facts_file(tmp_path, lines)
    assert main(["train", "--data.source", str(path), "--output_dir", str(tmp_path / "runs")]) == 2
    err = _one_line_error(capsys)
    assert all(part in err for part in named), err


def test_missing_local_data_file_is_reported_not_looked_up(tmp_path, no_model, capsys):
    missing = tmp_path / "nope" / "facts.jsonl"
    assert main(["train", "--data.source", str(missing)]) == 2
    assert f"data file not found: {missing}" in _one_line_error(capsys)
    assert main(["train", "--data.source", "facts.json"]) == 2  # relative, in the cwd: still a path
    assert "data file not found: facts.json" in _one_line_error(capsys)


def test_unknown_model_name_lists_the_embedded_aliases(tmp_path, capsys):
    options = ["--model", "smollm2-135m-instrukt", "--data.builtin_per_relation", "1"]
    assert main(["train", *options, "--output_dir", str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert "smollm2-135m-instrukt" in err and "smollm2-135m-instruct" in err
    assert not list(tmp_path.iterdir())


def test_reproduce_mistakes_are_one_line(tmp_path, no_model, monkeypatch, capsys):
    monkeypatch.setattr("semantic_peft.reproduce.load_model", _fail_if_called)
    rows = tmp_path / "rows.yaml"
    rows.write_text("base: missing.yaml\nrows:\n  - name: a\n")
    assert main(["reproduce", "--rows", str(rows), "--results", str(tmp_path / "out")]) == 2
    assert "config file not found" in _one_line_error(capsys)
    assert main(["reproduce", "--rows", "no_such_rows"]) == 2
    assert "no_such_rows" in _one_line_error(capsys)
    assert main(["reproduce", "--only", "lora", "lora_typo", "--results", str(tmp_path / "out")]) == 2
    assert "no row named lora_typo" in _one_line_error(capsys)
    rows.write_text("base: default.yaml\nrows:\n  - name: a\n  - name: b\n    overrides: {peft: {method: lorra}}\n")
    shipped_default = resolve_config_path(PACKAGE, DEFAULT_CONFIG)
    (tmp_path / "default.yaml").write_text(shipped_default.read_text())
    assert main(["reproduce", "--rows", str(rows), "--results", str(tmp_path / "out")]) == 2
    assert "peft.method" in _one_line_error(capsys)  # row b is checked before anything runs
    assert main(["reproduce", "--config", "tiny"]) == 2
    assert "--rows" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


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

    for seed, (em, locality) in enumerate([(0.5, 0.75), (0.7, 0.25)]):
        folder = tmp_path / f"seed_{seed}"
        write_results(folder / "00_base.json", {"train_em": 0.0, "locality_unrelated": 1.0}, extra={"label": "Base"})
        write_results(
            folder / "01_lora.json",
            {"train_em": em, "train_em_trained": em, "locality_unrelated": locality, "trained_facts": 3},
            extra={"label": "LoRA", "facts": 3},
        )
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- results:start -->\nold\n<!-- results:end -->\ny\n")
    write_table(tmp_path)
    assert "old" in readme.read_text()  # a README changes only when it is named
    write_table(tmp_path, readme)
    table = (tmp_path / "table.md").read_text()
    # two seeds: mean ± t(0.975, 1) * sd / sqrt(2) = 0.6 ± 12.706 * 0.1 = 0.6 ± 1.271
    assert "| Base | – | – | 0.000 |" in table and "| LoRA | 3 | **0.600 ± 1.271** | **0.600 ± 1.271** |" in table
    assert "**0.500 ± 3.176**" in table and "2 seed(s) (seed_0, seed_1; each row's count under Seeds" in table
    assert "old" not in readme.read_text() and "| LoRA |" in readme.read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary[1]["values"]["train_em"] == [0.5, 0.7] and summary[1]["seeds"] == ["seed_0", "seed_1"]


def test_shipped_parts_split_every_row_once_and_bad_parts_are_refused(tmp_path, no_model, monkeypatch, capsys):
    assert part_rows(DEFAULT_ROWS, "core") == ["lora", "lora_filter", "lora_reweight", "lora_filter_reweight"]
    assert part_rows(DEFAULT_ROWS, "methods") == ["full_ft", "ia3", "prompt_tuning", "prefix_tuning"]
    assert read_parts("paper/reproduce") == {}
    rows = tmp_path / "rows.yaml"
    rows.write_text("base: default.yaml\nparts: {one: [a]}\nrows:\n  - name: a\n  - name: b\n")
    with pytest.raises(ConfigError, match="every row exactly once"):
        read_parts(rows)
    monkeypatch.setattr("semantic_peft.reproduce.load_model", _fail_if_called)
    assert main(["reproduce", "--part", "cor", "--results", str(tmp_path / "out")]) == 2
    assert "no part named 'cor'" in _one_line_error(capsys) and not (tmp_path / "out").exists()
    assert main(["reproduce", "--part", "core", "--only", "lora", "--results", str(tmp_path / "out")]) == 2
    assert "not both" in _one_line_error(capsys)


def test_reproduction_rows_errors_and_overrides(tmp_path):
    rows = tmp_path / "rows.yaml"
    rows.write_text("base: default.yaml\nrows:\n  - name: a\n  - label: no name\n")
    with pytest.raises(ConfigError, match="row 1 needs a 'name'"):
        read_rows(rows)
    row = {"name": "x", "overrides": {"peft": {"method": "full", "target_modules": ["q_proj"]}, "save_model": False}}
    options = row_overrides(row)
    assert options == ["--peft.method", "full", "--peft.target_modules", "[q_proj]", "--save_model", "false"]
    config = load_config(ExperimentConfig, DEFAULT_CONFIG, [*options, "--train.lr", "1.0e-4"], package=PACKAGE)
    assert (config.peft.method, config.peft.target_modules, config.train.lr) == ("full", ["q_proj"], 1e-4)
    assert config.save_model is False


def test_each_row_is_written_when_it_finishes(tmp_path, tokenizer, make_llama, monkeypatch):
    from semantic_peft import reproduce as reproduction

    base = tmp_path / "base.yaml"
    base.write_text(
        f"output_dir: {tmp_path / 'runs'}\nsave_model: false\ndata: {{builtin_per_relation: 1}}\n"
        "train: {epochs: 1, batch_size: 8}\nanalysis: {figures: false}\naccelerator: {tracker: none}\n"
    )
    rows = tmp_path / "rows.yaml"
    rows.write_text("base: base.yaml\nrows:\n  - name: a\n  - name: b\n    overrides: {train: {lr: 0.01}}\n")
    monkeypatch.setattr(reproduction, "load_model", lambda name: (make_llama(), tokenizer))
    real_run, runs = reproduction.run_experiment, []

    def crash_in_second_row(config, *args, **kwargs):
        runs.append(config.name)
        if len(runs) == 2:
            raise KeyboardInterrupt  # Ctrl-C while row b trains
        return real_run(config, *args, **kwargs)

    monkeypatch.setattr(reproduction, "run_experiment", crash_in_second_row)
    out = tmp_path / "results"
    with pytest.raises(KeyboardInterrupt):
        reproduction.reproduce(rows, out)
    assert runs == ["a", "b"]
    assert sorted(p.name for p in (out / "seed_0").glob("*.json")) == ["00_base.json", "01_a.json"]
    row_a = json.loads((out / "seed_0" / "01_a.json").read_text())
    assert row_a["row"] == "a" and row_a["metrics"]["optimizer_steps"] == 1 and row_a["train_time_s"] > 0
    monkeypatch.setattr(
        reproduction, "run_experiment", lambda config, *a, **k: runs.append(config.name) or real_run(config, *a, **k)
    )
    reproduction.reproduce(rows, out)  # resumes: row a (same commit) is not run again
    assert runs == ["a", "b", "b"]
    reproduction.reproduce(rows, out, ["--seed", "1"], only=["a"])  # another seed is a part of its own
    assert runs[-1] == "a" and (out / "seed_1" / "01_a.json").is_file()
    assert "2 seed(s)" in (out / "table.md").read_text()


def test_tiny_config_is_the_default_cut_down():
    tiny = load_config(ExperimentConfig, "tiny", package=PACKAGE)
    changed = {key: new for key, _, new in diff_configs(ExperimentConfig(), tiny)}
    assert changed == {
        "name": "tiny",
        "data.builtin_per_relation": 1,
        "train.epochs": 2,
        "train.batch_size": 8,
        "analysis.figures": False,
        "accelerator.tracker": None,
    }


def test_real_data_table_names_its_source_and_fills_its_own_readme_section(tmp_path, monkeypatch):
    from semantic_peft.config import ExperimentConfig
    from shared_utils.results import write_results

    config = ExperimentConfig()
    config.data.source = "shared:knowledge-editing/zsre_mend_eval_1000.json"
    results = tmp_path / "out" / "zsre"
    for seed, em in enumerate([0.5, 0.7]):
        folder = results / f"seed_{seed}"
        write_results(folder / "00_base.json", {"train_em": 0.0}, config, extra={"label": "Base", "facts": 5})
        write_results(
            folder / "01_lora.json",
            {"train_em": em, "train_em_trained": em, "trained_facts": 5},
            config,
            extra={"label": "LoRA", "facts": 5},
        )
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- results:start -->\nBUILTIN\n<!-- results:end -->\n<!-- claims:start -->\nBUILTIN-CLAIMS\n"
        "<!-- claims:end -->\n<!-- zsre:start -->\nSTALE-ZSRE\n<!-- zsre:end -->\n"
        "<!-- zsre-claims:start -->\nSTALE-ZSRE-CLAIMS\n<!-- zsre-claims:end -->\n"
    )
    monkeypatch.chdir(tmp_path)
    write_table(results.resolve(), readme, "zsre")  # an absolute folder inside the current one
    table = (results / "table.md").read_text()
    assert "5 facts from `shared:knowledge-editing/zsre_mend_eval_1000.json`; mean ± 95%" in table
    assert "built-in" not in table and "from `out/zsre/seed_*/*.json`" in table
    claims = (results / "claims.md").read_text()
    assert "Data: 5 facts from `shared:knowledge-editing/zsre_mend_eval_1000.json`." in claims
    text = readme.read_text()
    assert "BUILTIN\n" in text and "BUILTIN-CLAIMS" in text  # the built-in sections are untouched
    assert (
        "STALE-ZSRE" not in text and text.count("facts from `shared:knowledge-editing/zsre_mend_eval_1000.json`") == 2
    )
    with pytest.raises(ValueError, match="counterfact:start"):  # missing markers fail loudly
        write_table(results, readme, "counterfact")
