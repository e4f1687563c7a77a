import pytest

from infodiffusion.reproduce import ROWS


def test_rows_isolate_each_part():
    """Each neighbouring pair differs in one thing: base schedule, self-conditioning, information term."""
    settings = {row: overrides for row, (_, overrides) in ROWS.items()}
    assert settings["diffuseq"] == {"diffusion.schedule": "sqrt", "model.self_conditioning": False}
    pairs = [("diffuseq", "linear"), ("linear", "linear_selfcond"), ("linear", "info"), ("info", "infodiffusion")]
    for a, b in pairs:
        assert sum(settings[a][k] != settings[b][k] for k in settings[a]) == 1, (a, b)
    assert settings["infodiffusion"] == {"diffusion.schedule": "info", "model.self_conditioning": True}


def _part(folder, row, seed, lr=3e-4, bleu=0.5):
    import json

    record = {
        "row": row,
        "seed": seed,
        "config": {"seed": seed, "output_dir": f"runs/{row}/seed{seed}", "train": {"lr": lr}},
        "metrics": {"bleu": bleu},
        "curve": {"bleu_by_step": [bleu, bleu], "reverse_steps": 2},
        "train": {"steps_per_s": 1.0},
        "data": "d",
        "git_commit": "c",
    }
    (folder / f"{row}.seed{seed}.json").write_text(json.dumps(record))


def test_aggregate_skips_unfinished_and_stale_parts_of_parallel_runs(tmp_path, caplog):
    """Parts run in parallel: another part's file still being written (not valid JSON yet) and a
    stale part from other settings are skipped with a warning naming them, not fatal."""
    from infodiffusion.reproduce import aggregate
    from shared_utils.errors import ConfigError

    _part(tmp_path, "diffuseq", 0, bleu=0.2)
    _part(tmp_path, "diffuseq", 1, bleu=0.4)
    _part(tmp_path, "diffuseq", 2, lr=1e-2, bleu=0.9)  # stale: other settings
    (tmp_path / "info.seed0.json").write_text('{"row": "info", "se')  # in progress
    expected = {"diffuseq": {"train": {"lr": 3e-4}}}
    with caplog.at_level("WARNING"):
        entries = aggregate(tmp_path, expected)
    assert [e["row"] for e in entries] == ["diffuseq"]
    assert entries[0]["seeds"] == [0, 1] and entries[0]["metrics"]["bleu"]["mean"] == pytest.approx(0.3)
    assert "info.seed0.json" in caplog.text and "diffuseq.seed2.json" in caplog.text
    # without the expected settings, mixing settings within one row is still refused, naming the file
    with pytest.raises(ConfigError, match=r"diffuseq\.seed2\.json: trained with other settings"):
        aggregate(tmp_path)


def test_a_part_written_before_a_config_key_existed_counts_as_done_at_that_keys_default(tmp_path):
    """Parts saved before ``model.init_projections`` existed ran its default (random) behaviour."""
    import json

    from infodiffusion.config import InfoDiffusionConfig
    from infodiffusion.reproduce import part_done
    from shared_utils.config import config_to_dict

    cfg = InfoDiffusionConfig()
    old = config_to_dict(cfg)
    del old["model"]["init_projections"]
    path = tmp_path / "diffuseq.seed0.json"
    path.write_text(json.dumps({"config": old}))
    assert part_done(cfg, path)
    cfg.model.init_projections = "identity"
    assert not part_done(cfg, path)
    old["model"]["no_such_key"] = 1
    path.write_text(json.dumps({"config": old}))
    assert not part_done(InfoDiffusionConfig(), path)
