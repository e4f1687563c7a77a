import json

import pytest
from tiny import make_examples

from distill_hetero import data
from distill_hetero.builtin import builtin_split
from distill_hetero.config import RunConfig
from distill_hetero.data import (
    BatchSchedule,
    MissingSharedSet,
    RecordError,
    format_prompt,
    load_records,
    parse_record,
    tokenize_example,
)
from distill_hetero.experiment import eval_sets
from distill_hetero.metrics import corpus_rouge_l, rouge_l
from shared_utils import errors


def test_rouge_l_hand_computed():
    # LCS("the cat sat on the mat", "the cat is on the mat") = "the cat on the mat" (5): P = R = F = 5/6
    assert rouge_l("the cat sat on the mat", ["the cat is on the mat"]) == pytest.approx(5 / 6)
    # stemming: cats -> cat, running -> run
    assert rouge_l("cats running", ["cat run"]) == pytest.approx(1.0)
    # best reference wins; P = 1/1, R = 1/4 -> F = 0.4
    assert rouge_l("paris", ["london", "paris is the capital"]) == pytest.approx(0.4)
    assert corpus_rouge_l(["a b", "x"], [["a b"], ["y"]]) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        corpus_rouge_l(["a", "b"], [["a"]])


def test_template_and_record_parsing():
    assert format_prompt("Say hi.") == (
        "Below is an instruction that describes a task. Write a response that "
        "appropriately completes the request.\n\n### Instruction:\nSay hi.\n\n"
        "### Response:\n"
    )
    assert "### Input:\nctx\n\n### Response:\n" in format_prompt("Say hi.", "ctx")
    rec = parse_record({"instruction": "Q", "input": "", "output": ["a", "b"]}, 0)
    assert rec.references == ["a", "b"] and rec.prompt == format_prompt("Q")
    assert parse_record({"prompt": "P", "output": "x"}, 0).prompt == "P"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"instruction": "Q", "output": 3},
            "train.jsonl record 4: field 'output' must be a string or a list of strings",
        ),
        ({"input": "x", "output": "y"}, "train.jsonl record 4: needs a non-empty 'instruction'"),
        ({"instruction": ["Q"], "output": "y"}, "train.jsonl record 4: field 'instruction' must be a string"),
        ({"instruction": "Q"}, "train.jsonl record 4: field 'output' is missing or empty"),
        ("just text", "train.jsonl record 4: expected a JSON object"),
    ],
)
def test_malformed_records_name_the_record_and_field(raw, message):
    with pytest.raises(RecordError, match=message):
        parse_record(raw, 4, "train.jsonl", require_output=True)


def test_local_jsonl_loader_reports_bad_lines(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"instruction": "Q", "output": "A"}) + "\n{broken\n")
    with pytest.raises(errors.RecordError, match=r"train\.jsonl line 2: not valid JSON"):
        load_records(str(path))


def test_missing_local_file_is_an_error_not_a_hub_lookup(tmp_path):
    with pytest.raises(errors.RecordError, match=r"data file not found: .*nope\.jsonl"):
        load_records(str(tmp_path / "nope.jsonl"))


def test_loss_only_on_the_response(tokenizer):
    ex = tokenize_example(tokenizer, 0, "### Instruction: What?", "Paris.", max_prompt_tokens=64, max_response_tokens=8)
    n_prompt = len(tokenizer("### Instruction: What?", add_special_tokens=False)["input_ids"])
    assert ex.labels[:n_prompt] == [-100] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    assert ex.labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ex.labels[n_prompt:-1]) == "Paris."
    assert len(make_examples(tokenizer, 3)) == 3


def test_schedule_two_ranks_see_what_one_rank_with_accumulation_sees():
    two = BatchSchedule(10, batch_size=2, world_size=2, accumulation=1, seed=3)
    one = BatchSchedule(10, batch_size=2, world_size=1, accumulation=2, seed=3)
    for step in range(6):  # crosses epochs
        assert two.indices(step, 0, 0) == one.indices(step, 0, 0)
        assert two.indices(step, 0, 1) == one.indices(step, 1, 0)
    epoch0 = [i for s in range(2) for r in range(2) for i in two.indices(s, 0, r)][:10]
    assert sorted(epoch0[:8]) == sorted(set(epoch0[:8]))  # no repeats inside an epoch


def test_builtin_split_is_disjoint_and_deterministic():
    train, held = builtin_split(200, 40)
    assert len(train) == 200 and len(held) == 40
    assert not {json.dumps(r) for r in train} & {json.dumps(r) for r in held}
    assert builtin_split(200, 40)[1] == held
    with pytest.raises(ValueError, match="exceeds"):
        builtin_split(1000, 40)


@pytest.mark.parametrize(
    ("name", "count", "multi"),
    [
        ("dolly_test", 500, False),
        ("selfinst_test", 242, False),
        ("vicuna_test", 80, False),
        ("sinst_test_500", 500, True),
        ("uinst_test_500", 500, False),
        ("dolly_dev", 1000, False),
    ],
)
def test_shared_minillm_sets_load(name, count, multi):
    root = data.shared_data_root(data.DATA_ENV)
    if root is None or not (root / "instruction" / f"{name}.jsonl").is_file():
        pytest.skip(f"shared data not found (at {root}; set DISTILL_HETERO_DATA)")
    records = load_records(name, require_output=True)
    assert len(records) == count
    assert all(r.prompt.endswith("### Response:\n") for r in records)
    assert any(len(r.references) > 1 for r in records) == multi


def _write_shared_set(root, name, records):
    folder = root / "instruction"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_shared_set_from_the_env_folder_keeps_every_reference(tmp_path, monkeypatch):
    _write_shared_set(
        tmp_path,
        "sinst_test_500",
        [{"instruction": "Q1", "output": ["a", "b"]}, {"instruction": "Q2", "input": "ctx", "output": "c"}],
    )
    monkeypatch.setenv("DISTILL_HETERO_DATA", str(tmp_path))
    records = load_records("sinst_test_500", require_output=True)
    assert [r.references for r in records] == [["a", "b"], ["c"]]
    assert records[1].prompt == format_prompt("Q2", "ctx")


def test_missing_eval_set_fails_naming_path_and_env_var_unless_skipping_is_allowed(tmp_path, monkeypatch):
    _write_shared_set(tmp_path, "dolly_test", [{"instruction": "Q", "output": "A"}])
    monkeypatch.setenv("DISTILL_HETERO_DATA", str(tmp_path))
    cfg = RunConfig()
    cfg.eval.datasets = ["dolly_test", "vicuna_test"]
    missing = tmp_path / "instruction" / "vicuna_test.jsonl"
    with pytest.raises(MissingSharedSet, match=rf"'vicuna_test' not found at {missing} \(set DISTILL_HETERO_DATA"):
        eval_sets(cfg, [])
    cfg.eval.skip_missing = True
    assert list(eval_sets(cfg, [])) == ["dolly_test"]
