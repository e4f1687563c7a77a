import json
import logging

import pytest
from conftest import shared_data_dir

from lemoe.data import DataError, EditRequest, load_edits, record_to_request
from shared_utils.errors import RecordError


def test_builtin_set_has_150_complete_edits():
    edits = load_edits("builtin")
    assert len(edits) >= 150
    assert all(e.prompt and e.target and e.rephrase and e.locality_prompt and e.locality_answer for e in edits)
    assert len({e.prompt for e in edits}) == len(edits)
    # counterfactual targets are short (a word or two)
    assert max(len(e.target.split()) for e in edits) <= 4


def test_zsre_record_mapping_strips_nq_prefix():
    record = {
        "subject": "Watts Humphrey",
        "src": "What university did Watts Humphrey attend?",
        "alt": "University of Michigan",
        "rephrase": "What university did Watts Humphrey take part in?",
        "loc": "nq question: who played desmond doss father",
        "loc_ans": "Hugo Weaving",
    }
    req = record_to_request(record, "zsre", 0)
    assert req == EditRequest(
        "What university did Watts Humphrey attend?",
        "University of Michigan",
        "What university did Watts Humphrey take part in?",
        "who played desmond doss father",
        "Hugo Weaving",
        "Watts Humphrey",
    )


def test_counterfact_schema_fills_subject_template():
    record = {
        "case_id": 1,
        "prompt": "{} is a citizen of",
        "target_new": "France",
        "subject": "Tom",
        "ground_truth": "Spain",
        "rephrase_prompt": "Tom holds a passport of",
        "locality_prompt": "Ann lives in",
        "locality_ground_truth": "Rome",
    }
    req = record_to_request(record, "counterfact", 0)
    assert req.prompt == "Tom is a citizen of" and req.target == "France" and req.locality_answer == "Rome"


def test_malformed_record_names_index_and_field(tmp_path, caplog):
    path = tmp_path / "edits.jsonl"
    rows = [
        {"prompt": "a", "target": "b", "rephrase": "c", "locality_prompt": "d", "locality_answer": "e"},
        {"prompt": "a", "target": "b", "locality_prompt": "d", "locality_answer": "e"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"edits.jsonl: record 1: missing field 'rephrase'"):
        load_edits(str(path))
    with caplog.at_level(logging.WARNING):
        assert len(load_edits(str(path), skip_invalid=True)) == 1
    assert "skipped 1 of 2 records" in caplog.text and "record 1: missing field 'rephrase'" in caplog.text
    with pytest.raises(DataError, match="unknown data_format 'wikidata'"):
        load_edits(str(path), "wikidata")


def test_missing_local_file_is_reported_as_missing_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("looked up on the Hub"))
    with pytest.raises(RecordError, match=r"data file not found: .*nope\.jsonl"):
        load_edits(str(tmp_path / "nope.jsonl"))


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "edits.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": \n')
    with pytest.raises(RecordError, match=r"edits.jsonl line 2: not valid JSON"):
        load_edits(str(path))


def test_shared_zsre_sample_loads():
    path = shared_data_dir() / "knowledge-editing" / "zsre_mend_eval_1000.json"
    if not path.exists():
        pytest.skip(f"shared ZsRE sample not found at {path} (set LEMOE_SHARED_DATA)")
    with pytest.raises(DataError, match="record 54: missing field 'alt'"):
        load_edits(str(path))
    edits = load_edits(str(path), skip_invalid=True)
    assert len(edits) == 998
    assert not any(e.locality_prompt.startswith("nq question:") for e in edits)


def test_shared_counterfact_sample_loads():
    path = shared_data_dir() / "knowledge-editing" / "counterfact_edit_1000.json"
    if not path.exists():
        pytest.skip(f"shared CounterFact sample not found at {path} (set LEMOE_SHARED_DATA)")
    edits = load_edits(str(path))
    assert len(edits) == 1000 and all("{}" not in e.prompt for e in edits)
