"""The `lemoe` console script end to end on the tiny test model: user errors are one line with exit
code 2, results go only where the user points, and each row's file is written when its row is done."""

import json
import logging
import os
import re

import pytest
from conftest import TOKENIZER, tiny_model

from lemoe import experiment
from lemoe.cli import main

TINY = [
    "--lemoe.adaptor.layer",
    "1",
    "--lemoe.adaptor.expert_width",
    "16",
    "--lemoe.router.dim",
    "8",
    "--lemoe.train.max_steps",
    "3",
    "--lemoe.train.progress",
    "false",
    "--plan.embedder",
    "model",
    "--eval_each_batch",
    "false",
]
RECORD = {
    "prompt": "fact a is",
    "target": "aa",
    "rephrase": "the fact a is",
    "locality_prompt": "x",
    "locality_answer": "y",
}


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(
        experiment, "load_model", lambda name, device, device_map="none": (tiny_model("llama"), TOKENIZER)
    )


def _edits(path, n=4, **changes):
    rows = [{**RECORD, "prompt": f"fact {i} is", "subject": f"fact {i}"} for i in range(n)]
    for i, record in changes.items():
        rows[int(i[1:])] = record
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lemoe: error: "), err
    return err[0]


def test_writes_only_to_output_dir_and_never_the_readme_unless_asked(tiny, tmp_path, monkeypatch, capsys):
    work = tmp_path / "elsewhere"  # not the repository: a relative README path would not even exist here
    work.mkdir()
    monkeypatch.chdir(work)
    data = _edits(tmp_path / "edits.jsonl")
    argv = ["edit", "--data", str(data), "--num_edits", "4", "--batch_size", "2", "--methods", "[ft_l]", *TINY]
    assert main(argv) == 0
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file()) == [
        os.path.join("runs", "lemoe", name)
        for name in ("batch_cost.png", "config.yaml", "ft_l.json", "metrics_vs_edits.png", "table.md")
    ]
    assert "| FT-L |" in capsys.readouterr().out
    # a README that is not there is an error before any training, not after it
    assert main([*argv, "--readme", "lemoe/README.md", "--output_dir", str(tmp_path / "out")]) == 2
    assert "option 'readme': lemoe/README.md does not exist" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_each_row_is_written_as_soon_as_it_finishes(tiny, tmp_path, monkeypatch, capsys):
    data = _edits(tmp_path / "edits.jsonl")
    real = experiment.run_method

    def interrupted_at_lora(method, *args):
        if method == "lora":
            raise KeyboardInterrupt
        return real(method, *args)

    monkeypatch.setattr(experiment, "run_method", interrupted_at_lora)
    out = tmp_path / "out"
    argv = ["edit", "--data", str(data), "--num_edits", "4", "--batch_size", "2", "--output_dir", str(out)]
    assert main([*argv, "--methods", "[ft_l, lora]", *TINY]) == 130  # Ctrl-C
    assert sorted(p.name for p in out.iterdir()) == [
        "batch_cost.png",
        "config.yaml",
        "ft_l.json",
        "metrics_vs_edits.png",
        "table.md",
    ]
    assert json.loads((out / "ft_l.json").read_text())["method"] == "ft_l"
    assert "| FT-L |" in (out / "table.md").read_text()


def test_malformed_records_are_skipped_with_a_warning_naming_each(tiny, tmp_path, caplog):
    bad = {k: v for k, v in RECORD.items() if k != "target"}
    data = _edits(tmp_path / "edits.jsonl", n=5, r1=bad, r3="not an object")
    argv = ["edit", "--data", str(data), "--num_edits", "3", "--batch_size", "3", "--methods", "[ft_l]"]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--output_dir", str(tmp_path / "out"), *TINY]) == 0
    assert "skipped 2 of 5 records" in caplog.text
    assert "record 1: missing field 'target'" in caplog.text and "record 3: expected a JSON object" in caplog.text


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", r"lemoe: error: data file not found: .*missing\.jsonl \(no such file or folder\)"),
        ("bad_json", r"lemoe: error: .*broken\.jsonl line 2: not valid JSON"),
        ("too_few", r"lemoe: error: num_edits=4 x num_runs=1 needs 4 edits but .* has 2 valid ones"),
        ("model", r"lemoe: error: cannot load model 'no-such-model': not an embedded alias \(smollm2-135m-instruct"),
    ],
)
def test_data_and_model_errors_are_one_line_with_exit_code_2(case, message, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # a hub id is never fetched here
    data = {
        "missing": tmp_path / "missing.jsonl",
        "bad_json": tmp_path / "broken.jsonl",
        "too_few": _edits(tmp_path / "two.jsonl", n=2),
        "model": "builtin",
    }[case]
    if case == "bad_json":
        data.write_text(json.dumps(RECORD) + '\n{"prompt": \n')
    model = "no-such-model" if case == "model" else "tiny"
    argv = ["edit", "--data", str(data), "--model", model, "--num_edits", "4", "--methods", "[ft_l]"]
    assert main([*argv, "--output_dir", str(tmp_path / "out")]) == 2
    assert re.match(message, _one_line_error(capsys))
    assert not (tmp_path / "out").exists()


def test_eval_of_a_missing_adaptor_folder_is_one_line(tiny, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing"), "--model", "tiny", "--limit", "2"]) == 2
    assert "nothing" in _one_line_error(capsys)


def test_summarize_gives_mean_and_t_interval_over_seed_folders(tmp_path, capsys):
    metrics = {"rel": 1.0, "gen": 0.5, "loc": 0.9, "avg": 0.8, "repetition": 0.1, "ppl_ratio": 1.0}
    for seed, rel in ((0, 0.90), (1, 0.95), (2, 1.00)):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        row = {"method": "lemoe", "label": "LEMoE", "config": {"lemoe": {"seed": seed}}}
        (folder / "lemoe.json").write_text(json.dumps({**row, "metrics": {**metrics, "rel": rel}}))
        if seed == 0:  # a row of one folder only is left out, by name
            (folder / "wise.json").write_text(json.dumps({**row, "method": "wise", "metrics": metrics}))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results-zsre-seeds:start -->\n<!-- results-zsre-seeds:end -->\n")
    folders = [str(tmp_path / f"seed{s}") for s in range(3)]
    assert main(["summarize", *folders, "--readme", str(readme)]) == 0
    out = capsys.readouterr().out
    half = 4.303 * 0.05 / 3**0.5  # t(0.975, 2) * sd / sqrt(n), sd of (0.90, 0.95, 1.00) = 0.05
    assert f"| LEMoE | 0, 1, 2 | 0.950 ± {half:.3f} | 0.500 ± 0.000 |" in out
    assert "left out: wise" in out and "| LEMoE |" in readme.read_text()
    assert main(["summarize", str(tmp_path / "seed0"), str(tmp_path / "nothing")]) == 2
    assert "no row files of `lemoe edit` in" in _one_line_error(capsys)
