"""Neighbourhood and same-subject locality probes of the built-in set (lemoe.probes) and their scores."""

import json

import pytest
from conftest import TOKENIZER, tiny_model

from lemoe.config import TrainConfig
from lemoe.data import EditRequest, builtin_path, load_edits
from lemoe.experiment import per_example
from lemoe.metrics import build_eval_sets
from lemoe.probes import COUNTRY_FALLBACK, same_subject_template, with_builtin_probes
from lemoe.training import SequentialEditor

FACTS = [json.loads(line) for line in builtin_path().read_text().splitlines()]


@pytest.fixture(scope="module")
def probed():
    editor = SequentialEditor(tiny_model("llama"), TOKENIZER, 1, TrainConfig(progress=False))
    return editor, with_builtin_probes(load_edits("builtin")[:100], editor)


def test_neighbourhood_is_the_same_relation_for_a_subject_not_edited_in_the_run(probed):
    _, requests = probed
    by_prompt = {f["prompt"]: f for f in FACTS}
    edited = {(by_prompt[r.prompt]["subject"], by_prompt[r.prompt]["relation"]) for r in requests}
    for r in requests:
        fact, neighbour = by_prompt[r.prompt], by_prompt[r.neighbourhood_prompt]
        assert neighbour["relation"] == fact["relation"] and neighbour["subject"] != fact["subject"]
        assert (neighbour["subject"], neighbour["relation"]) not in edited
        assert r.neighbourhood_answer == neighbour["ground_truth"]
    assert len({r.neighbourhood_prompt for r in requests}) > 20  # spread over the pool, not one probe


def test_same_subject_probe_names_the_subject_under_a_relation_not_edited_for_it(probed):
    _, requests = probed
    edit_prompts = {r.prompt for r in requests}
    for r in requests:
        assert r.subject in r.same_subject_prompt and r.same_subject_prompt != r.prompt
        assert r.same_subject_prompt not in edit_prompts and r.same_subject_answer
    assert same_subject_template("capital", "Peru", {("Peru", "language")}) == "The currency of {} is the"
    both = {("Peru", "language"), ("Peru", "currency")}
    assert same_subject_template("capital", "Peru", both) == COUNTRY_FALLBACK


def test_probes_are_scored_apart_and_the_unedited_model_agrees_with_itself(probed):
    editor, requests = probed
    requests = requests[:6]
    sets = build_eval_sets(editor.model, editor.tokenizer, requests, layer=1)
    assert set(sets.probes) == {"loc_nbhd", "loc_same"}
    scores = per_example(editor, sets)
    assert scores["loc_nbhd"] == [1.0] * 6 and scores["loc_same"] == [1.0] * 6
    # an edit without probes is left out of those two scores only
    sets = build_eval_sets(editor.model, editor.tokenizer, load_edits("builtin")[:3], layer=1)
    assert sets.probes == {} and "loc_nbhd" not in per_example(editor, sets)


def test_only_builtin_edits_get_builtin_probes(probed):
    editor, _ = probed
    with pytest.raises(ValueError, match="no built-in edit"):
        with_builtin_probes([*load_edits("builtin")[:1], EditRequest("p is", "t")], editor)
