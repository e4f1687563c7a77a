import json

import pytest

from infodiffusion.cli import build_parser, main
from shared_utils.config import ConfigError


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "sample", "eval", "bench", "reproduce"):
        assert command in out


def test_unknown_option_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no_such_option"):
        main(["train", "--train.no_such_option", "3", "--output_dir", str(tmp_path)])


def test_bad_schedule_value_is_named(tmp_path, tiny_overrides):
    args = [f"--{k}={v}" for k, v in tiny_overrides.items()]
    with pytest.raises(ValueError, match=r"diffusion\.schedule"):
        main(["train", *args, "--diffusion.schedule", "cosine", "--output_dir", str(tmp_path)])


def test_eval_scores_a_samples_file(tmp_path):
    rows = [
        (0, 0, "a b c d e", "a b c d e"),
        (0, 1, "x y z w v", "a b c d e"),
        (1, 0, "p q r s t", "p q r s t"),
        (1, 1, "p q r s t", "p q r s t"),
    ]
    path = tmp_path / "samples.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"source": s, "candidate": c, "seed": 0, "src": "", "hyp": h, "ref": r}) for s, c, h, r in rows
        )
    )
    assert (
        main(
            [
                "eval",
                "--run",
                str(tmp_path),
                "--eval.mbr_quality",
                "2",
                "--eval.mbr_diversity",
                "2",
                "--eval.bertscore_model",
                "",
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    # MBR over two candidates ties -> the first; both picks equal their references
    assert metrics["bleu"] == pytest.approx(1.0) and metrics["rouge_l"] == pytest.approx(1.0)
    assert metrics["div_4"] == pytest.approx((4 / 4 + 2 / 4) / 2)
