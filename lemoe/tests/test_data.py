import json

import pytest
from conftest import shared_data_dir

from lemoe.data import DataError, EditRequest, load_edits, record_to_request


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


def test_malformed_record_names_index_and_field(tmp_path):
    path = tmp_path / "edits.jsonl"
    rows = [
        {"prompt": "a", "target": "b", "rephrase": "c", "locality_prompt": "d", "locality_answer": "e"},
        {"prompt": "a", "target": "b", "locality_prompt": "d", "locality_answer": "e"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"record 1: missing field 'rephrase'"):
        load_edits(str(path))
    assert len(load_edits(str(path), skip_invalid=True)) == 1
    with pytest.raises(DataError, match="unknown data_format"):
        record_to_request(rows[0], "wikidata", 0)


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
