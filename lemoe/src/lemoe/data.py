"""Edit requests and loaders for every supported format.

Formats: ZsRE in the MEND schema (``src, alt, rephrase, loc, loc_ans``), CounterFact in
EasyEdit's schema (``prompt, target_new, rephrase_prompt, locality_prompt,
locality_ground_truth``), a generic JSONL (``prompt, target, rephrase, locality_prompt,
locality_answer``), the package's built-in counterfactual set, and hub ids via ``datasets``.
A malformed record raises :class:`DataError` naming the source, its index and the missing
field; with ``skip_invalid`` it is left out and one warning names every skipped record and
their count (``shared_utils.records.parse_records``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from shared_utils.errors import RecordError
from shared_utils.records import parse_records, read_records, require_local


class DataError(RecordError):
    """A record that cannot be turned into an edit request (the message names index and field)."""


@dataclass(frozen=True)
class EditRequest:
    """One edit: make ``prompt`` continue with ``target``; scored also on ``rephrase`` and locality.

    Locality comes in three kinds (each scored apart): ``locality_*``, the data set's own probe
    (ZsRE: an unrelated NQ question; CounterFact: a neighbourhood prompt; built-in: an unrelated
    fact); ``neighbourhood_*``, the same relation for another subject; ``same_subject_*``, the same
    subject under another relation. The last two are optional (empty: not scored for this edit).
    """

    prompt: str
    target: str
    rephrase: str = ""
    locality_prompt: str = ""
    locality_answer: str = ""
    subject: str = ""
    neighbourhood_prompt: str = ""
    neighbourhood_answer: str = ""
    same_subject_prompt: str = ""
    same_subject_answer: str = ""


FIELDS = {
    "zsre": {
        "prompt": "src",
        "target": "alt",
        "rephrase": "rephrase",
        "locality_prompt": "loc",
        "locality_answer": "loc_ans",
        "subject": "subject",
    },
    "counterfact": {
        "prompt": "prompt",
        "target": "target_new",
        "rephrase": "rephrase_prompt",
        "locality_prompt": "locality_prompt",
        "locality_answer": "locality_ground_truth",
        "subject": "subject",
        # CounterFact's locality prompts are neighbourhood prompts (same relation, another subject)
        "neighbourhood_prompt": "locality_prompt",
        "neighbourhood_answer": "locality_ground_truth",
    },
    "jsonl": {
        "prompt": "prompt",
        "target": "target",
        "rephrase": "rephrase",
        "locality_prompt": "locality_prompt",
        "locality_answer": "locality_answer",
        "subject": "subject",
        "neighbourhood_prompt": "neighbourhood_prompt",
        "neighbourhood_answer": "neighbourhood_answer",
        "same_subject_prompt": "same_subject_prompt",
        "same_subject_answer": "same_subject_answer",
    },
}
REQUIRED = ("prompt", "target", "rephrase", "locality_prompt", "locality_answer")


def _text(value: Any) -> str:
    """CounterFact/EasyEdit fields are sometimes lists (several paraphrases): take the first."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value)


def record_to_request(record: dict[str, Any], fmt: str, index: int, source: str = "") -> EditRequest:
    """Map one raw record of format ``fmt`` (a key of ``FIELDS``) to an :class:`EditRequest`;
    errors name ``source`` and ``index``."""
    where = f"{source}: " if source else ""
    if not isinstance(record, dict):
        raise DataError(f"{where}record {index}: expected a JSON object, got {type(record).__name__}")
    mapping = FIELDS[fmt]
    values = {}
    for name, key in mapping.items():
        if key not in record or record[key] is None or _text(record[key]).strip() == "":
            if name in REQUIRED:
                raise DataError(f"{where}record {index}: missing field {key!r} ({fmt} format)")
            values[name] = ""
            continue
        values[name] = _text(record[key])
    if fmt == "zsre" and values["locality_prompt"].startswith("nq question: "):
        values["locality_prompt"] = values["locality_prompt"][len("nq question: ") :]
    if fmt == "counterfact" and "{}" in values["prompt"]:
        values["prompt"] = values["prompt"].format(values["subject"])
    return EditRequest(**{k: v.strip() for k, v in values.items()})


def detect_format(record: dict[str, Any]) -> str:
    """Guess the schema from the keys of the first record."""
    if "src" in record and "alt" in record:
        return "zsre"
    if "target_new" in record:
        return "counterfact"
    return "jsonl"


def builtin_path() -> Path:
    """The package's own counterfactual edit set (150 well-known facts, see README)."""
    return Path(str(resources.files("lemoe") / "data" / "builtin_edits.jsonl"))


def unrelated_text(source: str = "builtin", split: str = "calibration") -> list[str]:
    """Unrelated sentences and questions, one per line: neither edits nor evaluation probes.

    ``source='builtin'`` is the package's ``data/unrelated_text.txt`` (156 lines written for this
    package: everyday sentences and general-knowledge questions, none of them an edit, a
    paraphrase or a locality prompt of any data set here). Even lines (0, 2, ...) are the
    ``calibration`` split the learned no-expert path trains on; odd lines are ``heldout``, only
    for scoring (the perplexity of the edited model on unrelated text).
    """
    path = Path(str(resources.files("lemoe") / "data" / "unrelated_text.txt")) if source == "builtin" else Path(source)
    if not path.is_file():
        raise DataError(f"router.null_data: {source} does not exist")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if split not in ("calibration", "heldout"):
        raise ValueError(f"split must be 'calibration' or 'heldout', got {split!r}")
    return lines[0::2] if split == "calibration" else lines[1::2]


def load_edits(
    source: str = "builtin", fmt: str = "auto", limit: int | None = None, skip_invalid: bool = False
) -> list[EditRequest]:
    """Load edit requests from ``source``: 'builtin', a local .json/.jsonl file, or a hub dataset id.

    A local path that does not exist is an error (never looked up on the Hub). ``skip_invalid``
    leaves out malformed records (e.g. the two ZsRE eval records with an empty ``alt``) with a
    warning naming each, instead of raising; ``limit`` counts valid requests.
    """
    if source == "builtin":
        path, fmt = builtin_path(), "jsonl"
    else:
        path = require_local(source)
    if path is not None:
        records = read_records(path)
    else:
        import datasets

        records = list(datasets.load_dataset(source, split="train"))
    if not records:
        raise DataError(f"{source}: no records")
    if fmt in ("auto", "builtin"):
        fmt = detect_format(records[0]) if fmt == "auto" else "jsonl"
    if fmt not in FIELDS:
        raise DataError(f"unknown data_format {fmt!r}; expected one of {sorted(FIELDS)}")
    requests = parse_records(records, lambda record, i: record_to_request(record, fmt, i, source), source, skip_invalid)
    return requests[:limit] if limit is not None else requests
