import json
import time

import pytest

import infodiffusion.reproduce
import infodiffusion.run
from infodiffusion.cli import build_parser, main
from infodiffusion.config import InfoDiffusionConfig
from shared_utils.config import diff_configs, flatten_config, load_config


def _args(overrides: dict) -> list[str]:
    return [f"--{k}={v}" for k, v in overrides.items()]


def _one_line_error(capsys, *needles: str) -> str:
    """The command ended with one error line (after any log lines) and no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("infodiffusion: error: ")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    for needle in needles:
        assert needle in errors[0], err
    return errors[0]


@pytest.fixture
def no_tokenizer(monkeypatch):
    """Fail the test if a command gets as far as loading the tokenizer (the first data step)."""

    def refuse(name):
        raise AssertionError(f"the tokenizer {name!r} was loaded before the config was checked")

    monkeypatch.setattr(infodiffusion.run, "load_tokenizer", refuse)


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "sample", "eval", "bench", "reproduce"):
        assert command in out


def test_shipped_default_config_equals_the_dataclass_defaults():
    shipped = load_config(InfoDiffusionConfig, "default", package="infodiffusion")
    assert diff_configs(shipped, InfoDiffusionConfig()) == []
    assert shipped == InfoDiffusionConfig()


def test_help_shows_the_shipped_default_values(capsys):
    shipped = flatten_config(load_config(InfoDiffusionConfig, "default", package="infodiffusion"))
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--config CONFIG" in out and "default" in out and "tiny" in out and "paper/qqp" in out
    for key, value in shipped.items():
        assert f"--{key} (default: {value!r})" in out, key


def test_unknown_option_is_one_line(tmp_path, capsys, no_tokenizer):
    assert main(["train", "--train.no_such_option", "3", "--output_dir", str(tmp_path)]) == 2
    _one_line_error(capsys, "train.no_such_option", "train.steps")


def test_bad_choice_fails_before_any_data_is_loaded(tmp_path, capsys, no_tokenizer):
    start = time.perf_counter()
    assert main(["train", "--diffusion.schedule", "cosine", "--output_dir", str(tmp_path)]) == 2
    assert time.perf_counter() - start < 1.0
    _one_line_error(capsys, "diffusion.schedule", "'sqrt', 'linear', 'info'", "cosine")
    assert not any(tmp_path.iterdir())


def test_unknown_config_name_lists_the_shipped_ones(capsys):
    assert main(["train", "--config", "nosuch"]) == 2
    _one_line_error(capsys, "nosuch", "default", "tiny", "paper/qqp")


def test_malformed_jsonl_names_file_and_line(tmp_path, capsys, tiny_overrides):
    (tmp_path / "train.jsonl").write_text('{"src": "a b", "trg": "b a"}\n\n{"src": "a", "trg": \n')
    args = _args({**tiny_overrides, "data.dataset": tmp_path, "output_dir": tmp_path / "run"})
    assert main(["train", *args]) == 2
    _one_line_error(capsys, f"{tmp_path / 'train.jsonl'} line 3", "not valid JSON")


def test_malformed_record_is_named(tmp_path, capsys, tiny_overrides):
    (tmp_path / "train.jsonl").write_text('{"src": "a b", "trg": "b a"}\n{"src": "a", "tgt": "b"}\n')
    args = _args({**tiny_overrides, "data.dataset": tmp_path, "output_dir": tmp_path / "run"})
    assert main(["train", *args]) == 2
    _one_line_error(capsys, "train.jsonl line 2", "missing field 'trg'")


def test_missing_local_data_is_reported_not_looked_up(tmp_path, capsys, monkeypatch, tiny_overrides):
    import datasets

    def no_hub(*args, **kwargs):
        raise AssertionError("a local path was looked up on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    missing = tmp_path / "no" / "such" / "folder"
    args = _args({**tiny_overrides, "data.dataset": missing, "output_dir": tmp_path / "run"})
    assert main(["train", *args]) == 2
    _one_line_error(capsys, str(missing), "not found")


def test_a_split_the_builtin_data_lacks_is_one_line(tmp_path, capsys, tiny_overrides):
    args = _args({**tiny_overrides, "data.train_split": "trian", "output_dir": tmp_path / "run"})
    assert main(["train", *args]) == 2
    _one_line_error(capsys, "'trian'", "data.train_split", "['test', 'train', 'valid']")


def test_a_hub_id_that_cannot_be_loaded_is_one_line(tmp_path, capsys, monkeypatch, tiny_overrides):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = _args({**tiny_overrides, "data.dataset": "nosuch-owner/nosuch-set", "output_dir": tmp_path / "run"})
    assert main(["train", *args]) == 2
    _one_line_error(capsys, "data.dataset 'nosuch-owner/nosuch-set'", "hub id")


def test_unknown_tokenizer_lists_the_embedded_aliases(tmp_path, capsys, tiny_overrides):
    args = _args({**tiny_overrides, "data.tokenizer": "no-such-model-xyz", "output_dir": tmp_path / "run"})
    assert main(["train", *args]) == 2
    _one_line_error(capsys, "no-such-model-xyz", "minilm-l6", "smollm2-135m-instruct")


def test_sample_without_a_trained_model_is_one_line(tmp_path, capsys):
    assert main(["sample", "--run", str(tmp_path)]) == 2
    _one_line_error(capsys, str(tmp_path), "no trained model")


def _samples_file(path, rows):
    path.write_text(
        "\n".join(
            json.dumps({"source": s, "candidate": c, "seed": 0, "src": "", "hyp": h, "ref": r}) for s, c, h, r in rows
        )
    )


EVAL = ["--eval.mbr_quality", "2", "--eval.mbr_diversity", "2", "--eval.bertscore_model", ""]


def test_eval_scores_a_samples_file(tmp_path):
    rows = [
        (0, 0, "a b c d e", "a b c d e"),
        (0, 1, "x y z w v", "a b c d e"),
        (1, 0, "p q r s t", "p q r s t"),
        (1, 1, "p q r s t", "p q r s t"),
    ]
    _samples_file(tmp_path / "samples.jsonl", rows)
    assert main(["eval", "--run", str(tmp_path), *EVAL]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    # MBR over two candidates ties -> the first; both picks equal their references
    assert metrics["bleu"] == pytest.approx(1.0) and metrics["rouge_l"] == pytest.approx(1.0)
    assert metrics["div_4"] == pytest.approx((4 / 4 + 2 / 4) / 2)


def test_eval_names_a_malformed_sample(tmp_path, capsys):
    path = tmp_path / "samples.jsonl"
    path.write_text(
        '{"source": 0, "candidate": 0, "hyp": "a", "ref": "a"}\n{"source": 0, "candidate": 1, "ref": "a"}\n'
    )
    assert main(["eval", "--samples", str(path), "--run", str(tmp_path), *EVAL]) == 2
    _one_line_error(capsys, f"{path} record 2", "'hyp'")
    path.write_text("{not json\n")
    assert main(["eval", "--samples", str(path), "--run", str(tmp_path), *EVAL]) == 2
    _one_line_error(capsys, f"{path} line 1", "not valid JSON")
    assert not (tmp_path / "metrics.json").exists()


def test_reproduce_writes_under_output_dir_and_no_readme_by_default(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(infodiffusion.reproduce, "reproduce", lambda *args: calls.append(args) or "table")
    assert main(["reproduce", "--output_dir", str(tmp_path / "out")]) == 0
    _, results, runs, readme, rows, reuse, seeds = calls[-1]
    assert (results, runs, readme, rows, reuse) == (tmp_path / "out" / "results", tmp_path / "out", None, None, False)
    assert seeds == (0, 1, 2)
    readme_path = tmp_path / "README.md"
    argv = ["reproduce", "--results", "R", "--runs", "S", "--readme", str(readme_path), "--rows", "diffuseq"]
    assert main([*argv, "--seeds", "3,1"]) == 0
    assert [str(p) for p in calls[-1][1:4]] == ["R", "S", str(readme_path)] and calls[-1][4] == ["diffuseq"]
    assert calls[-1][6] == (3, 1)
    assert main([*argv, "--aggregate-only"]) == 0 and calls[-1][6] == ()


def test_reproduce_refuses_unknown_rows_and_a_missing_readme(tmp_path, capsys, no_tokenizer):
    assert main(["reproduce", "--output_dir", str(tmp_path), "--rows", "diffuseq,nosuch"]) == 2
    _one_line_error(capsys, "nosuch", "linear_selfcond")
    assert main(["reproduce", "--output_dir", str(tmp_path), "--seeds", "0,x"]) == 2
    _one_line_error(capsys, "--seeds", "0,x")
    assert main(["reproduce", "--output_dir", str(tmp_path), "--seeds", "1,1"]) == 2
    _one_line_error(capsys, "--seeds", "distinct")
    assert main(["reproduce", "--output_dir", str(tmp_path), "--readme", str(tmp_path / "README.md")]) == 2
    _one_line_error(capsys, "--readme", "README.md")
    assert not any(tmp_path.iterdir())


def test_a_config_built_in_python_checks_its_choices():
    from infodiffusion.config import DiffusionConfig, SampleConfig
    from shared_utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"DiffusionConfig\.schedule .*'sqrt', 'linear', 'info'.*'cosine'"):
        DiffusionConfig(schedule="cosine")
    with pytest.raises(ConfigError, match=r"SampleConfig\.method"):
        SampleConfig(method="ddpm2")


@pytest.mark.slow
def test_tiny_reproduce_writes_only_under_output_dir_repeats_its_numbers_and_skips_done_parts(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--config", "tiny", "--output_dir", "a", "--seeds", "0,1"]) == 0
    results = tmp_path / "a" / "results"
    parts = {p.name: json.loads(p.read_text()) for p in results.glob("*.seed*.json")}
    assert sorted(parts) == sorted(f"{row}.seed{s}.json" for row in infodiffusion.reproduce.ROWS for s in (0, 1))
    assert {(p["row"], p["seed"], p["config"]["seed"]) for p in parts.values()} == {
        (row, s, s) for row in infodiffusion.reproduce.ROWS for s in (0, 1)
    }
    summary = json.loads((results / "summary.json").read_text())["rows"]
    info = next(e for e in summary if e["row"] == "infodiffusion")
    bleus = [parts[f"infodiffusion.seed{s}.json"]["metrics"]["bleu"] for s in (0, 1)]
    assert info["seeds"] == [0, 1] and info["metrics"]["bleu"]["mean"] == pytest.approx(sum(bleus) / 2)
    assert info["metrics"]["bleu"]["ci95"] == pytest.approx(12.706 * abs(bleus[0] - bleus[1]) / 2)
    assert (results / "table.md").is_file() and (results / "bleu_vs_steps.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    # a second part: the done (row, seed) files are skipped (not rewritten), seed 2 is added
    before = {name: (results / name).stat().st_mtime_ns for name in parts}
    assert main(["reproduce", "--config", "tiny", "--output_dir", "a", "--seeds", "1,2", "--rows", "info"]) == 0
    assert all((results / name).stat().st_mtime_ns == t for name, t in before.items())
    summary = json.loads((results / "summary.json").read_text())["rows"]
    assert next(e for e in summary if e["row"] == "info")["seeds"] == [0, 1, 2]
    assert "| info schedule | 3 |" in (results / "table.md").read_text()
    assert main(["reproduce", "--config", "tiny", "--output_dir", "b", "--rows", "infodiffusion", "--seeds", "1"]) == 0
    again = json.loads((tmp_path / "b" / "results" / "infodiffusion.seed1.json").read_text())
    assert again["metrics"] == parts["infodiffusion.seed1.json"]["metrics"]
    # a part trained with other settings is not mixed in: each call aggregates only the parts run with
    # its own settings and skips the others with a warning naming them (parts run in parallel, stale files)
    lr = ["--train.lr", "0.01"]
    assert (
        main(["reproduce", "--config", "tiny", "--output_dir", "b", "--rows", "infodiffusion", "--seeds", "2", *lr])
        == 0
    )
    stale = json.loads((tmp_path / "b" / "results" / "infodiffusion.seed2.json").read_text())
    assert stale["config"]["train"]["lr"] == 0.01
    summary = json.loads((tmp_path / "b" / "results" / "summary.json").read_text())["rows"]
    assert [(e["row"], e["seeds"]) for e in summary] == [("infodiffusion", [2])]
    assert "infodiffusion.seed1.json: skipped" in capsys.readouterr().err
    assert main(["reproduce", "--config", "tiny", "--output_dir", "b", "--aggregate-only"]) == 0
    summary = json.loads((tmp_path / "b" / "results" / "summary.json").read_text())["rows"]
    assert [(e["row"], e["seeds"]) for e in summary] == [("infodiffusion", [1])]
    assert "infodiffusion.seed2.json: skipped" in capsys.readouterr().err
