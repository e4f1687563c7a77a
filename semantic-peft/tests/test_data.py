import json
import logging

import pytest

from semantic_peft.builtin_facts import RELATIONS, builtin_facts
from semantic_peft.data import RecordError, drift_probe_pairs, encode_pairs, load_facts, parse_facts, probe_pairs


def test_builtin_facts_are_many_unique_and_deterministic():
    facts = builtin_facts(per_relation=25, seed=0)
    assert len(facts) == 25 * len(RELATIONS) >= 200
    assert len({f.subject for f in facts}) == len(facts)
    assert all(len(f.paraphrases) == 2 and f.unrelated for f in facts)
    assert all(f.subject in f.prompt and all(f.subject in p for p in f.paraphrases) for f in facts)
    assert [(f.prompt, f.target) for f in facts] == [(f.prompt, f.target) for f in builtin_facts(25, 0)]
    assert [f.target for f in facts] != [f.target for f in builtin_facts(25, 1)]
    unrelated, neighbourhood = probe_pairs(facts, "unrelated"), probe_pairs(facts, "neighbourhood")
    assert (len(unrelated), len(neighbourhood)) == (64, 64)  # >= 100 locality probes, the two kinds apart
    assert not {p for p, _ in unrelated} & {p for p, _ in neighbourhood}


def test_neighbourhood_probes_use_the_fact_template_with_another_subject():
    facts = builtin_facts(per_relation=25, seed=0)
    for fact in facts:
        template = RELATIONS[fact.relation][0]
        head, tail = template.split("{")[0], template.split("}")[1]
        (probe,) = fact.neighbourhood
        assert probe.prompt.startswith(head) and probe.prompt.endswith(tail) and fact.subject not in probe.prompt
        assert not any(u.prompt.startswith(head) and u.prompt.endswith(tail) for u in fact.unrelated)


def test_drift_probe_sets_are_the_trained_facts_paraphrases_and_all_probes():
    facts = builtin_facts(per_relation=2, seed=0)
    sets = drift_probe_pairs(facts[:3], facts, max_paraphrases=1)
    assert sets["paraphrase"] == [(f.paraphrases[0], f.target) for f in facts[:3]]
    assert sets["unrelated"] == probe_pairs(facts, "unrelated") and len(sets["neighbourhood"]) == 16


def test_encoding_supervises_only_the_target(tokenizer):
    enc = encode_pairs(tokenizer, [("Alice lives in", "Wonderland"), ("The sky is", "blue")], append_eos=True)
    assert enc.prompt_lengths.tolist() == [3, 3]
    row = enc.labels[0].tolist()
    assert row[:3] == [-100] * 3
    assert row[3:5] == [tokenizer.convert_tokens_to_ids("Wonderland"), tokenizer.eos_token_id]
    ids = tokenizer.convert_tokens_to_ids
    assert enc.target_ids == [[ids("Wonderland")], [ids("blue")]]


def test_generic_jsonl_and_errors_name_the_record(tmp_path):
    good = {
        "prompt": "Alice lives in",
        "target": "Wonderland",
        "paraphrases": ["Alice's home is"],
        "unrelated": [{"prompt": "The sky is", "target": "blue"}],
    }
    path = tmp_path / "facts.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "target": ""}) + "\n")
    with pytest.raises(RecordError, match=r"record 1 field 'target' must be a non-empty string"):
        load_facts(str(path))
    path.write_text(json.dumps(good) + "\n" + "{not json\n")
    with pytest.raises(RecordError, match="line 2: not valid JSON"):
        load_facts(str(path))
    path.write_text(json.dumps(good) + "\n")
    (fact,) = load_facts(str(path))
    assert (fact.prompt, fact.target, fact.paraphrases) == ("Alice lives in", "Wonderland", ["Alice's home is"])
    assert fact.unrelated[0].target == "blue"


def test_malformed_records():
    with pytest.raises(RecordError, match="record 1 must be a JSON object"):
        parse_facts([{"prompt": "a", "target": "b"}, ["x"]])
    with pytest.raises(RecordError, match="record 0 matches no known schema"):
        parse_facts([{"question": "a"}])
    with pytest.raises(RecordError, match="record 1 field 'alt'"):
        parse_facts([{"src": "q?", "alt": "a"}, {"src": "q2?", "alt": None}], "zsre")
    with pytest.raises(RecordError, match="record 0 field 'rephrase_prompt'"):
        parse_facts([{"prompt": "p", "target_new": "t", "rephrase_prompt": 3}], "counterfact")
    with pytest.raises(RecordError, match="record 0 field 'unrelated\\[0\\]'"):
        parse_facts([{"prompt": "p", "target": "t", "unrelated": ["oops"]}])


def test_zsre_and_counterfact_samples(shared_data):
    folder = shared_data / "knowledge-editing"
    with pytest.raises(RecordError, match="record 54 field 'alt'"):
        load_facts(str(folder / "zsre_mend_eval_1000.json"))
    zsre = load_facts(str(folder / "zsre_mend_eval_1000.json"), skip_invalid=True)
    assert 900 < len(zsre) < 1000
    assert (zsre[0].prompt, zsre[0].target) == ("What university did Watts Humphrey attend?", "University of Michigan")
    assert zsre[0].paraphrases == ["What university did Watts Humphrey take part in?"]
    assert zsre[0].unrelated[0].prompt == "who played desmond doss father in hacksaw ridge"
    cf = load_facts(str(folder / "counterfact_edit_1000.json"), max_facts=10)
    assert (cf[0].prompt, cf[0].target, cf[0].fact_id) == (
        "David Robinson professionally plays the sport",
        "baseball",
        "3087",
    )
    assert cf[0].neighbourhood[0].target == "basketball" and not cf[0].unrelated  # CounterFact: same relation


def test_skipped_records_are_each_named_in_one_warning(tmp_path, caplog):
    good = {"prompt": "Alice lives in", "target": "Wonderland"}
    path = tmp_path / "facts.jsonl"
    rows = [good, {**good, "target": ""}, {**good, "prompt": "Bob owns a red", "target": "car"}, [1]]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with caplog.at_level(logging.WARNING):
        facts = load_facts(str(path), skip_invalid=True)
    assert [f.target for f in facts] == ["Wonderland", "car"]
    assert "skipped 2 of 4 records" in caplog.text
    assert "record 1 field 'target'" in caplog.text and "record 3 must be a JSON object" in caplog.text


def test_dev_split_shares_no_subject_with_the_evaluation_facts():
    """The sweeps' dev split (5 per relation, builtin_seed 1) asks about none of the 200 evaluation
    facts' subjects; only closed-vocabulary targets (professions, instruments, colours) recur."""
    evaluation, dev = builtin_facts(25, 0), builtin_facts(5, 1)
    assert len(dev) == 40 and len(evaluation) == 200
    assert not {f.subject for f in dev} & {f.subject for f in evaluation}
    assert not {f.prompt for f in dev} & {f.prompt for f in evaluation}
    shared = {f.relation for f in dev if f.target in {g.target for g in evaluation}}
    assert shared <= {"profession", "instrument", "flag_colour", "birth_year"}
