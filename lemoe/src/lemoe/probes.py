"""Hard locality probes for the built-in set: same relation / another subject, same subject / another relation.

The built-in records (``data/builtin_edits.jsonl``) carry ``relation``, ``subject`` and the true
answer ``ground_truth``; each relation has one prompt template (``The capital of {} is``, ...). For
the edits of one run:

- **neighbourhood** (same relation, another subject): the prompt of another built-in record of
  the same relation whose fact is *not* edited in this run, with its true answer; the records are
  taken in file order, the k-th edit of a relation getting the k-th such record (cycling), so the
  probes spread over the pool. An edit whose relation has no unedited record left gets none.
- **same subject, another relation**: the edit's subject in another relation's template. Countries
  (capital, currency, official language) take the first other country relation that is not edited
  for that subject in this run, else ``{} is a country on the continent of``; books, companies and
  landmarks take one template each of a relation that is never edited (publication year,
  headquarters, country). The answer is the unedited model's greedy continuation
  (``SAME_SUBJECT_TOKENS`` tokens): locality asks the edited model to agree with the unedited one,
  so no hand-written fact is needed.

This is where the subject-string gate fires wrongly (same subject) and where prompts look most like
the edits to the router and the activation gate (same template).
"""

from __future__ import annotations

from dataclasses import replace

from lemoe.data import EditRequest, builtin_path
from lemoe.metrics import greedy
from shared_utils.records import read_records

COUNTRY_TEMPLATES = {
    "capital": "The capital of {} is",
    "language": "The official language of {} is",
    "currency": "The currency of {} is the",
}
COUNTRY_FALLBACK = "{} is a country on the continent of"
OTHER_RELATION_TEMPLATES = {
    "author": "{} was first published in the year",
    "founder": "The headquarters of {} are in the city of",
    "landmark": "The {} is located in the country of",
}
SAME_SUBJECT_TOKENS = 3


def same_subject_template(relation: str, subject: str, edited: set[tuple[str, str]]) -> str:
    """The template of another relation for ``subject`` (see the module docstring); never an edit in ``edited``."""
    if relation in COUNTRY_TEMPLATES:
        others = [r for r in COUNTRY_TEMPLATES if r != relation and (subject, r) not in edited]
        return COUNTRY_TEMPLATES[others[0]] if others else COUNTRY_FALLBACK
    if relation not in OTHER_RELATION_TEMPLATES:
        raise ValueError(f"built-in relation {relation!r} has no same-subject template")
    return OTHER_RELATION_TEMPLATES[relation]


def with_builtin_probes(requests: list[EditRequest], editor) -> list[EditRequest]:
    """``requests`` (built-in edits) with neighbourhood and same-subject probes; ``editor`` is an unedited
    :class:`lemoe.training.SequentialEditor` whose greedy answers become the same-subject answers."""
    records = read_records(builtin_path())
    by_prompt = {r["prompt"]: r for r in records}
    missing = [r.prompt for r in requests if r.prompt not in by_prompt]
    if missing:
        raise ValueError(f"with_builtin_probes: {len(missing)} requests are no built-in edit, e.g. {missing[0]!r}")
    facts = [by_prompt[r.prompt] for r in requests]
    edited = {(f["subject"], f["relation"]) for f in facts}
    pool: dict[str, list[dict]] = {}
    for record in records:
        if (record["subject"], record["relation"]) not in edited:
            pool.setdefault(record["relation"], []).append(record)
    seen: dict[str, int] = {}
    neighbours = []
    for fact in facts:
        k = seen.get(fact["relation"], 0)
        seen[fact["relation"]] = k + 1
        candidates = pool.get(fact["relation"], [])
        neighbours.append(candidates[k % len(candidates)] if candidates else None)
    prompts = [same_subject_template(f["relation"], f["subject"], edited).format(f["subject"]) for f in facts]
    generated, _ = greedy(editor, prompts, ["x"] * len(prompts), max_new_tokens=SAME_SUBJECT_TOKENS)
    answers = [editor.tokenizer.decode(g, skip_special_tokens=True).strip() for g in generated]
    return [
        replace(
            request,
            neighbourhood_prompt=n["prompt"] if n else "",
            neighbourhood_answer=n["ground_truth"] if n else "",
            same_subject_prompt=prompt if answer else "",
            same_subject_answer=answer,
        )
        for request, n, prompt, answer in zip(requests, neighbours, prompts, answers, strict=True)
    ]
