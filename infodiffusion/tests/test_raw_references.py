"""References and sources are scored as raw text; the restricted vocabulary only limits the
model's output space (issue 14, item 3)."""

import json

import pytest

import infodiffusion.evaluate
from infodiffusion.cli import main

TRAIN = [{"src": f"where is the {w} house ?", "trg": f"the {w} house is here ."} for w in ("red", "blue", "old")]
TEST = [{"src": "where is the geologist house ?", "trg": "A great Geologist?"}]


@pytest.fixture
def run_with_unseen_words(tmp_path, tiny_overrides):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("\n".join(json.dumps(p) for p in TRAIN * 4))
    (data / "test.jsonl").write_text("\n".join(json.dumps(p) for p in TEST))
    run = tmp_path / "run"
    args = [f"--{k}={v}" for k, v in tiny_overrides.items()]
    args += [f"--data.dataset={data}", f"--output_dir={run}", "--data.restrict_vocab=true"]
    assert main(["train", *args]) == 0
    assert main(["sample", "--run", str(run)]) == 0
    return run


def test_scored_references_are_the_raw_text(run_with_unseen_words, monkeypatch):
    run = run_with_unseen_words
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {r["ref"] for r in records} == {TEST[0]["trg"]}  # "geologist" is not in the training vocabulary
    assert {r["src"] for r in records} == {TEST[0]["src"]}
    seen = {}
    original = infodiffusion.evaluate.evaluate_candidates

    def spy(candidates, refs, *args):
        seen["refs"] = refs
        return original(candidates, refs, *args)

    monkeypatch.setattr(infodiffusion.evaluate, "evaluate_candidates", spy)
    assert main(["eval", "--run", str(run), "--eval.bertscore_model", ""]) == 0
    # what BLEU sees: the raw reference under the tokenizer's normalisation, no word dropped
    assert seen["refs"] == ["a great geologist ?"]
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    # "a", "great", "geologist" (geo ##logist) and "?" are unseen in training: 4 of 5 tokens
    assert (
        metrics["oov_rate_ref"] == pytest.approx(records[0]["ref_oov"] / records[0]["ref_tokens"])
        and metrics["oov_rate_ref"] > 0.5
    )
    assert 0 < metrics["oov_rate_src"] < metrics["oov_rate_ref"]
