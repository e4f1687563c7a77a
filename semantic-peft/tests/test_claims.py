"""The claims table: verdict logic on made-up numbers, paired differences over seeds, and the
generated table/README section from made-up results folders."""

import json

import pytest

from semantic_peft.claims import FAILS, HOLDS, NOISE, ONE_SEED, evaluate_claims, paired_difference, verdict
from semantic_peft.reproduce import write_table
from shared_utils.results import write_results


@pytest.mark.parametrize(
    ("mean", "half", "direction", "expected"),
    [
        (0.2, 0.1, 1, HOLDS),  # [0.1, 0.3] > 0
        (0.2, 0.3, 1, NOISE),  # [-0.1, 0.5] contains 0
        (-0.2, 0.1, 1, FAILS),  # excludes 0 on the wrong side
        (-0.2, 0.1, -1, HOLDS),  # a claimed decrease
        (0.05, 0.1, -1, NOISE),
        (0.3, 0.1, -1, FAILS),
        (0.0, 0.0, 1, FAILS),  # exactly 0 in every seed: no effect at all
        (0.1, 0.1, 1, NOISE),  # the interval touches 0: not excluded
        (0.4, None, 1, ONE_SEED),
    ],
)
def test_verdict(mean, half, direction, expected):
    assert verdict(mean, half, direction) == expected


def test_verdict_rejects_a_bad_direction():
    with pytest.raises(ValueError, match="direction"):
        verdict(0.1, 0.1, 0)


def test_paired_difference_pairs_by_seed():
    a = {"seed_0": 0.5, "seed_1": 0.7, "seed_2": 0.6}
    b = {"seed_0": 0.4, "seed_1": 0.6, "seed_3": 0.0}  # seed_2 / seed_3 unpaired: left out
    diff = paired_difference(a, b)
    assert diff["seeds"] == ["seed_0", "seed_1"]
    assert diff["mean"] == pytest.approx(0.1) and diff["half"] == pytest.approx(0.0, abs=1e-12)
    # paired, the rows' own spread (0.1 each) cancels; one row alone: t(0.975, 1) * sd / sqrt(2)
    alone = paired_difference({"seed_0": 0.1, "seed_1": 0.3})
    assert alone["mean"] == pytest.approx(0.2) and alone["half"] == pytest.approx(12.706 * 0.1)
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({"seed_0": 1.0}, {"seed_1": 1.0})


def _row(folder, stem, row, label, metrics, details=None):
    extra = {"label": label, "row": row} | ({"details": details} if details else {})
    write_results(folder / f"{stem}.json", metrics, extra=extra)


def _made_up(tmp_path, reweight_em):
    """Three seeds of base, LoRA, LoRA + re-weighting and full FT with chosen numbers."""
    for seed, (lora, full) in enumerate([(0.30, 0.60), (0.35, 0.62), (0.40, 0.58)]):
        folder = tmp_path / f"seed_{seed}"
        write_results(folder / "00_base.json", {"train_em": 0.0}, extra={"label": "Base", "row": "base"})
        common = {"trained_facts": 4, "pushed_away_fraction": 0.0, "paraphrase_pushed_away_fraction": 0.1}
        per_fact = {"fact": ["capital-0", "founder-1", "profession-2", "instrument-3"], "train_em": [0, 0, 1, 1]}
        _row(
            folder,
            "01_lora",
            "lora",
            "LoRA",
            {
                **common,
                "train_em_trained": lora,
                "train_em": lora,
                "para_em": 0.2,
                "alone_em": 1.0,
                "joint_em_same_facts": 0.0,
            }
            | {"feature_cos_mean": 0.3},
            {
                "per_fact": per_fact,
                "alone_vs_joint": [{"fact": "capital-0", "alone_em": 1.0, "joint_em": 0.0}],
                "buckets_by_initial_distance": {
                    "train_em": [
                        {"distance_low": 0.1, "distance_high": 0.3, "value": 0.6 + 0.1 * seed},
                        {"distance_low": 0.3, "distance_high": 0.9, "value": 0.1 + 0.1 * seed},
                    ]
                },
                "per_relation": {"capital": {"distance_base": 0.7, "train_em": 0.0}},
            },
        )
        _row(
            folder,
            "02_lora_reweight",
            "lora_reweight",
            "LoRA + re-weighting",
            {**common, "train_em_trained": reweight_em[seed], "para_em": 0.2},
        )
        _row(
            folder,
            "03_full_ft",
            "full_ft",
            "Full fine-tuning",
            {**common, "train_em_trained": full, "paraphrase_pushed_away_fraction": 0.1 - 0.01 * seed},
        )


def _by_measured(claims):
    return {c["measured"]: c for c in claims}


def test_claims_on_made_up_results(tmp_path):
    _made_up(tmp_path, reweight_em=[0.40, 0.45, 0.50])  # re-weighting +0.10 in every seed
    claims = _by_measured(evaluate_claims(tmp_path))
    full = claims["EM on trained facts, LoRA minus full fine-tuning"]
    assert full["difference"]["mean"] == pytest.approx(-0.25) and full["verdict"] == HOLDS
    assert full["sides"][0]["mean"] == pytest.approx(0.35)
    rw = claims["EM on trained facts, re-weighted LoRA minus plain LoRA"]
    assert rw["difference"]["mean"] == pytest.approx(0.10) and rw["verdict"] == HOLDS
    assert claims["fraction of trained facts whose distance grew (training prompts), LoRA"]["verdict"] == FAILS
    assert claims["fraction of paraphrases whose distance grew, LoRA"]["verdict"] == HOLDS  # 0.1 every seed
    hard = claims["LoRA EM on names/years/places relations minus common-word relations"]
    assert hard["difference"]["mean"] == pytest.approx(-1.0) and hard["verdict"] == HOLDS
    joint = claims["LoRA EM of facts learned jointly minus the same facts learned alone"]
    assert joint["difference"]["mean"] == pytest.approx(-1.0) and joint["verdict"] == HOLDS
    # rows that are not there (filtering, IA3, ...) give no claim instead of a made-up one
    assert not any("filter" in m or "IA3" in m for m in claims)


def test_claims_that_do_not_hold_or_sit_in_the_noise(tmp_path):
    _made_up(tmp_path, reweight_em=[0.20, 0.25, 0.30])  # -0.10 in every seed: does not hold
    rw = _by_measured(evaluate_claims(tmp_path))["EM on trained facts, re-weighted LoRA minus plain LoRA"]
    assert rw["verdict"] == FAILS
    _made_up(tmp_path, reweight_em=[0.10, 0.60, 0.35])  # mean 0.35 - 0.35 = 0, spread 0.25: noise
    rw = _by_measured(evaluate_claims(tmp_path))["EM on trained facts, re-weighted LoRA minus plain LoRA"]
    assert rw["difference"]["mean"] == pytest.approx(0.0, abs=1e-12) and rw["verdict"] == NOISE


def test_aggregation_writes_claims_figure_and_readme_section(tmp_path):
    _made_up(tmp_path, reweight_em=[0.40, 0.45, 0.50])
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- results:start -->\n<!-- results:end -->\n<!-- claims:start -->\nSTALE-TEXT\n<!-- claims:end -->\n"
    )
    write_table(tmp_path, readme)
    text = readme.read_text()
    assert "STALE-TEXT" not in text and "| Re-weighting by semantic distance helps |" in text
    assert "+0.100 ± 0.000 | > 0 | **holds** |" in text
    assert "[figures/methods.png](figures/methods.png)" in text
    assert (tmp_path / "figures" / "methods.png").stat().st_size > 0
    saved = json.loads((tmp_path / "claims.json").read_text())
    assert {c["verdict"] for c in saved} <= {HOLDS, FAILS, NOISE}
    assert (tmp_path / "claims.md").read_text().startswith("| Paper's finding |")


def test_interference_curve_claims(tmp_path):
    _made_up(tmp_path, reweight_em=[0.40, 0.45, 0.50])
    curve = tmp_path / "interference"
    curve.mkdir()
    for seed, (joint, ratio) in enumerate([(0.4, 0.7), (0.6, 0.8)]):
        points = [
            {"n": 1, "em_core": 1.0, "feature_norm_ratio_core": 1.0},
            {"n": 50, "em_core": joint, "feature_norm_ratio_core": ratio},
            {"n": 100, "em_core": 0.0, "feature_norm_ratio_core": 0.1},  # only in seed 0: not compared
        ][: 3 - seed]
        record = {"seed": seed, "sizes": [p["n"] for p in points], "alone": {"em_core": 0.9}, "points": points}
        (curve / f"seed_{seed}.json").write_text(json.dumps(record))
    claims = [c for c in evaluate_claims(tmp_path) if c["measured"].startswith("interference curve")]
    em, norm = claims
    assert em["difference"]["mean"] == pytest.approx(0.5 - 0.9) and em["difference"]["seeds"] == ["seed_0", "seed_1"]
    assert em["verdict"] == NOISE  # -0.4 ± 12.706 * 0.1
    assert norm["difference"]["mean"] == pytest.approx(-0.25) and norm["verdict"] == NOISE
