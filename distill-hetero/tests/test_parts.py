"""Parts of a split reproduction on a tiny run: ``reproduce --skip-done`` keeps the rows the current
commit wrote and reruns the others (a row of another commit, a missing row); ``render`` rebuilds a
folder's table, figures and README section from its files alone, equal to what ``reproduce`` wrote."""

import json

import pytest
from tiny import make_teacher

from distill_hetero import experiment
from distill_hetero.cli import main

README = "# x\n\n<!-- results:start -->\nold\n<!-- results:end -->\n"


@pytest.fixture
def tiny_reproduce(tmp_path, tokenizer, monkeypatch):
    """``(argv of a tiny reproduce of sft and kd_fkl, results folder, rows each call trained, set_commit)``."""
    teacher_dir = tmp_path / "teacher"
    make_teacher(tokenizer).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    commit = {"now": "c1"}  # the checkout's commit as the code sees it, fixed here (the test tree may be dirty)
    monkeypatch.setattr("shared_utils.results.git_commit", lambda cwd=None: commit["now"])
    monkeypatch.setattr(experiment, "git_commit", lambda cwd=None: commit["now"])
    trained: list[list[str]] = []
    real_run_row = experiment.run_row

    def counting_run_row(name, *args, **kwargs):
        trained[-1].append(name)
        return real_run_row(name, *args, **kwargs)

    monkeypatch.setattr(experiment, "run_row", counting_run_row)
    results = tmp_path / "results"
    argv = ["reproduce", "--teacher", str(teacher_dir), "--rows", "sft,kd_fkl", "--no-teacher"]
    argv += ["--results", str(results), "--readme", str(tmp_path / "README.md"), "--output_dir", str(tmp_path / "run")]
    argv += ["--data.builtin_train_size", "6", "--data.builtin_eval_size", "3", "--data.max_response_tokens", "6"]
    argv += ["--data.cache_dir", str(tmp_path / "cache"), "--eval.datasets", "[builtin]", "--eval.sample_seeds", "[]"]
    argv += ["--eval.max_new_tokens", "4", "--student.init", "random", "--student.num_layers", "2"]
    argv += ["--student.hidden_size", "16", "--student.num_heads", "2", "--student.keep_blocks", "[]"]
    argv += ["--mapping.rule", "uniform", "--train.steps", "2", "--train.batch_size", "2", "--train.warmup_steps", "1"]
    argv += ["--train.teacher_cache_top_k", "8", "--accelerator.tracker", "none", "--accelerator.cpu", "true"]
    argv += ["--accelerator.mixed_precision", "no", "--num_threads", "0"]
    (tmp_path / "README.md").write_text(README)

    def run(*extra: str) -> list[str]:
        trained.append([])
        assert main([*argv, *extra]) == 0
        return trained[-1]

    def set_commit(value: str) -> None:
        commit["now"] = value

    return run, results, set_commit


def _numbers(row: dict) -> dict:
    """A row's metrics and loss history without its timings."""
    timing = ("train_time_s", "step_time_s", "step_cpu_s")
    metrics = {k: v for k, v in row["metrics"].items() if k not in timing}
    return {"metrics": metrics, "history": [{k: v for k, v in h.items() if k not in timing} for h in row["history"]]}


def test_skip_done_keeps_rows_of_this_commit_and_reruns_the_others(tiny_reproduce):
    run, results, set_commit = tiny_reproduce
    assert run("--skip-done") == ["sft", "kd_fkl"]  # nothing written yet: every row runs
    first = {name: (results / f"{name}.json").read_bytes() for name in ("sft", "kd_fkl")}
    assert {json.loads(b)["git_commit"] for b in first.values()} == {"c1"}
    kd = json.loads(first["kd_fkl"])  # what a rerun compares first: the teacher cache's bytes and the CPU kernels
    assert len(kd["teacher_cache_sha256"]) == 64 and kd["cpu_kernels"]["aten_cpu_capability"]

    assert run("--skip-done") == []  # both written by this commit: kept byte for byte
    assert {name: (results / f"{name}.json").read_bytes() for name in first} == first

    (results / "kd_fkl.json").unlink()  # a part that did not finish
    assert run("--skip-done") == ["kd_fkl"]
    assert (results / "sft.json").read_bytes() == first["sft"]
    # alone it gives the numbers it gave after sft
    assert _numbers(json.loads((results / "kd_fkl.json").read_text())) == _numbers(json.loads(first["kd_fkl"]))

    set_commit("c2")  # a new commit: rows of c1 are not this commit's, so both rerun
    assert run("--skip-done") == ["sft", "kd_fkl"]
    assert {json.loads((results / f"{n}.json").read_text())["git_commit"] for n in first} == {"c2"}
    assert run() == ["sft", "kd_fkl"]  # without --skip-done every row reruns


def test_render_rebuilds_the_tables_figures_and_readme_from_the_files(tiny_reproduce, tmp_path):
    run, results, _ = tiny_reproduce
    run()
    readme = tmp_path / "README.md"
    table = (results / "table.md").read_bytes()
    section = readme.read_text()
    assert "| SFT (CE on teacher answers) |" in section and "KD (forward KL) − KD" not in section
    assert "commit `c1`" in section and "old" not in section
    for name in ("table.md", "loss_curves.png", "loss_ratios.png"):
        (results / name).unlink()
    readme.write_text(README)
    assert main(["render", str(results), "--readme", str(readme)]) == 0
    assert (results / "table.md").read_bytes() == table
    assert (results / "loss_curves.png").stat().st_size > 0 and (results / "loss_ratios.png").stat().st_size > 0
    assert readme.read_text() == section
