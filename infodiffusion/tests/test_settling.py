"""The keyinfo-first check (issue 14 item 2): settling steps, information bins, the `settle` command."""

import json

import numpy as np
import pytest
import torch

from infodiffusion.cli import main
from infodiffusion.settling import bootstrap_bins, quantile_bins, settling_fraction, verdict
from shared_utils.errors import ConfigError


def test_settling_step_is_the_first_step_of_the_final_run_of_tokens():
    # 6 recorded steps, final token 9 from step index 3 on: 3 / (6 - 1)
    assert settling_fraction(torch.tensor([5, 7, 7, 9, 9, 9])).item() == pytest.approx(0.6)
    assert settling_fraction(torch.tensor([4, 4, 4, 4])).item() == 0.0  # never changes
    assert settling_fraction(torch.tensor([4, 4, 4, 5])).item() == 1.0  # changes at the last step
    assert settling_fraction(torch.tensor([9, 7, 9, 9])).item() == pytest.approx(2 / 3)  # back to 9 counts from 2
    assert settling_fraction(torch.tensor([3])).item() == 0.0
    # [K, sources, positions]: every position on its own
    trajectory = torch.tensor([[[1, 2]], [[1, 3]], [[1, 3]]])
    assert settling_fraction(trajectory).tolist() == [[0.0, 0.5]]


def test_quantile_bins_split_the_scores_and_refuse_an_empty_bin():
    edges, bins = quantile_bins(np.array([0.4, -0.2, 0.9, 0.1]), 2)
    assert edges.tolist() == pytest.approx([-0.2, 0.25, 0.9])
    assert bins.tolist() == [1, 0, 1, 0]
    _, bins = quantile_bins(np.array([0.0, 1.0, 2.0]), 2)
    assert bins.tolist() == [0, 1, 1]  # the median itself goes to the upper bin
    with pytest.raises(ConfigError, match="--bins 3"):
        quantile_bins(np.array([0.5, 0.5, 0.5, 1.0]), 3)


def test_bin_means_difference_and_source_bootstrap_on_hand_made_positions():
    # two sources; per source two low-information positions settling late and one high settling early
    source = np.array([0, 0, 0, 1, 1, 1])
    settle = np.array([0.8, 0.6, 0.2, 0.4, 0.6, 0.0])
    bins = np.array([0, 0, 1, 0, 0, 1])
    stats = bootstrap_bins(source, settle, bins, 2)
    assert stats["mean"] == pytest.approx([0.6, 0.1])  # pooled over positions
    assert stats["positions"] == [4, 2]
    assert stats["difference"] == pytest.approx(0.5)
    # resampling whole sources: the low bin's mean ranges over source 1's 0.5 .. source 0's 0.7
    (lo, hi), (dlo, dhi) = stats["ci95"][0], stats["difference_ci95"]
    assert lo == pytest.approx(0.5) and hi == pytest.approx(0.7)
    assert dlo == pytest.approx(0.5) and dhi == pytest.approx(0.5)  # both sources differ by 0.5
    assert verdict(stats["difference_ci95"]) == "keyinfo-first"
    assert verdict([-0.3, -0.1]) == "easy-first" and verdict([-0.1, 0.2]) == "not separated"
    # identical sources: no spread
    same = bootstrap_bins(np.array([0, 0, 1, 1]), np.array([0.2, 0.4, 0.2, 0.4]), np.array([0, 1, 0, 1]), 2)
    assert np.allclose(same["ci95"], [[0.2, 0.2], [0.4, 0.4]])
    assert same["difference"] == pytest.approx(-0.2) and verdict(same["difference_ci95"]) == "easy-first"


def test_settle_command_writes_json_figure_and_table_for_tiny_runs(tmp_path, tiny_overrides, capsys):
    args = [f"--{k}={v}" for k, v in tiny_overrides.items()]
    info, sqrt = tmp_path / "info", tmp_path / "sqrt"
    assert main(["train", *args, f"--output_dir={info}"]) == 0
    sqrt_row = ["--diffusion.schedule", "sqrt", "--model.self_conditioning", "false"]
    assert main(["train", *args, *sqrt_row, f"--output_dir={sqrt}"]) == 0
    out = tmp_path / "settling"
    assert main(["settle", str(info), str(sqrt), "--output", str(out), "--sources", "3", "--bins", "2"]) == 0
    assert {p.name for p in out.iterdir()} == {"settling.json", "settling.png", "settling.md"}
    record = json.loads((out / "settling.json").read_text())
    runs = record["metrics"]["runs"]
    assert [r["label"] for r in runs] == ["InfoDiffusion (info + self-cond.)", "DiffuSeq (sqrt)"]
    assert record["settings"]["sources"] == 3 and record["git_commit"]
    for r in runs:
        assert r["n_sources"] == 3 and len(r["bins"]) == 2
        assert r["sampler"] == "ddpm, 50 recorded steps (T = 50)"  # DDPM over all T unless told otherwise
        assert all(0 <= b["mean_settling"] <= 1 and b["ci95"][0] <= b["ci95"][1] for b in r["bins"])
        low, high = (b["mean_settling"] for b in r["bins"])
        assert r["low_minus_high"]["mean"] == pytest.approx(low - high)
        assert r["verdict"] in ("keyinfo-first", "easy-first", "not separated")
        assert len(r["examples"]) == 3 and r["examples"][0]["words"]
    table = (out / "settling.md").read_text()
    assert "InfoDiffusion (info + self-cond.)" in table and "DiffuSeq (sqrt)" in table
    # the run's sampler when asked for; a key the run fixes is refused in one line
    assert main(["settle", str(sqrt), "--output", str(out), "--sources", "2", "--sample.method", "ddim"]) == 0
    assert json.loads((out / "settling.json").read_text())["metrics"]["runs"][0]["sampler"].startswith("ddim, 5 ")
    capsys.readouterr()
    assert main(["settle", str(sqrt), "--output", str(out), "--diffusion.schedule", "info"]) == 2
    assert "diffusion.schedule" in capsys.readouterr().err
