import json

import pytest
import yaml
from tiny import make_teacher
from transformers import AutoModelForCausalLM

from distill_hetero.cli import main

TINY_RUN = [
    "--student.num_layers",
    "2",
    "--student.hidden_size",
    "16",
    "--student.num_heads",
    "2",
    "--student.init",
    "random",
    "--train.steps",
    "1",
    "--train.batch_size",
    "2",
    "--train.teacher_cache_top_k",
    "0",
    "--accelerator.tracker",
    "none",
    "--accelerator.cpu",
    "true",
]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("teacher")
    make_teacher(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _fails_in_one_line(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # progress bars of the model loading may come before it
    assert "Traceback" not in err and last.startswith("distill-hetero: error: ") and message in last, err


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
            "--student.intermediate_size",
            "32",
            "--student.keep_blocks",  # the shipped default's blocks and pairs are the embedded teacher's
            "[]",
            "--mapping.rule",
            "uniform",
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
    # the default student: pruned from the (tiny LLaMA) teacher, exported and reloaded
    assert student.config.model_type == "llama" and student.config.vocab_size == len(tokenizer)
    assert student.config.num_hidden_layers == 2 and student.config.intermediate_size == 32


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


def test_unknown_option_is_one_line(capsys):
    _fails_in_one_line(capsys, ["train", "--loss.projektor", "mlp"], "unknown option(s) for LossConfig: loss.projektor")


def test_unknown_row_fails_before_the_teacher_is_loaded(capsys, monkeypatch):
    monkeypatch.setattr("distill_hetero.experiment.load_teacher", pytest.fail)
    _fails_in_one_line(capsys, ["reproduce", "--rows", "sft,kd_rkl"], "unknown row 'kd_rkl'; known rows: sft, kd_fkl")


def test_reproduce_trains_every_row_by_default_dwa_included(monkeypatch, tmp_path):
    """`make reproduce-distill-hetero` passes no --rows: every row of experiment.ROWS is configured."""
    from distill_hetero import experiment

    built = []
    real_load = experiment.load_config

    def record(*args, **kwargs):
        built.append(real_load(*args, **kwargs))
        return built[-1]

    class ConfiguredEveryRow(Exception):
        pass

    def stop(*args, **kwargs):
        raise ConfiguredEveryRow  # the teacher is loaded after the row configs are built

    monkeypatch.setattr(experiment, "load_config", record)
    monkeypatch.setattr(experiment, "load_teacher", stop)
    with pytest.raises(ConfiguredEveryRow):
        main(["reproduce", "--results", str(tmp_path)])
    rows = {cfg.name: cfg.loss.weighting for cfg in built[1:]}  # built[0]: the base config
    assert rows == {
        "sft": "fixed",
        "kd_fkl": "fixed",
        "kd_inter_fixed": "fixed",
        "kd_inter_learned": "uncertainty",
        "kd_inter_dwa": "dwa",
    }
    assert experiment.ROW_LABELS["kd_inter_dwa"] == "KD + intermediate (adaptive ratios, DWA)"


def test_unknown_model_name_lists_the_embedded_aliases(capsys, tmp_path):
    argv = ["train", "--teacher", "no-such-model", "--output_dir", str(tmp_path)]
    _fails_in_one_line(capsys, argv, "not an embedded alias (smollm2-135m-instruct, minilm-l6)")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "data file not found: {path} (no such file or folder)"),
        ('{"instruction": "Q", "output": "A"}\n{broken\n', "{path} line 2: not valid JSON"),
        ('{"instruction": "Q", "output": "A"}\n{"input": "x"}\n', "record 1: needs a non-empty 'instruction'"),
    ],
    ids=["missing", "malformed-json", "malformed-record"],
)
def test_data_errors_name_the_file_and_record(capsys, tmp_path, teacher_dir, content, message):
    path = tmp_path / "data" / "train.jsonl"
    if content is not None:
        path.parent.mkdir()
        path.write_text(content)
    argv = ["train", "--teacher", str(teacher_dir), "--data.train", str(path), *TINY_RUN, "--output_dir", str(tmp_path)]
    _fails_in_one_line(capsys, argv, message.format(path=path))


def test_missing_eval_set_fails_before_training(capsys, tmp_path, teacher_dir, monkeypatch):
    monkeypatch.setenv("DISTILL_HETERO_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr("distill_hetero.trainer.train", pytest.fail)
    argv = ["train", "--teacher", str(teacher_dir), "--data.builtin_train_size", "4", "--data.builtin_eval_size", "2"]
    argv += [*TINY_RUN, "--eval.datasets", "[vicuna_test]", "--data.cache_dir", str(tmp_path / "cache")]
    argv += ["--output_dir", str(tmp_path / "run")]
    missing = tmp_path / "nowhere" / "instruction" / "vicuna_test.jsonl"
    _fails_in_one_line(
        capsys, [*argv, "--results", str(tmp_path / "r.json")], f"not found at {missing} (set DISTILL_HETERO_DATA"
    )
