"""MiniLLM-format instruction data: records, the Alpaca template, tokenisation with loss on the
response only, deterministic resumable batching, and loaders (built-in set, local JSONL, hub ids)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from shared_utils import errors
from shared_utils.errors import ConfigError
from shared_utils.records import parse_records, read_records, require_local, shared_data_root

PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
    "{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
SHARED_SETS = ("dolly_dev", "dolly_test", "selfinst_test", "vicuna_test", "sinst_test_500", "uinst_test_500")
IGNORE = -100
DATA_ENV = "DISTILL_HETERO_DATA"


class RecordError(errors.RecordError):
    """A data file or record that does not follow the MiniLLM format; the message names the record and field."""


class MissingSharedSet(RecordError):
    """A shared MiniLLM set that is not on disk (``eval.skip_missing`` turns it into a warning)."""


@dataclass
class Record:
    """One instruction example: the filled prompt and zero or more reference responses."""

    prompt: str
    references: list[str]
    instruction: str = ""
    input: str = ""


def format_prompt(instruction: str, input_text: str = "") -> str:
    """The Alpaca-style template used by MiniLLM (with or without an input)."""
    if input_text:
        return PROMPT_WITH_INPUT.format(instruction=instruction, input=input_text)
    return PROMPT_NO_INPUT.format(instruction=instruction)


def parse_record(raw: object, index: int, source: str = "data", require_output: bool = False) -> Record:
    """Validate a MiniLLM record (``instruction``, ``input``, ``output`` str or list, ``prompt``)."""
    where = f"{source} record {index}"
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    for name in ("instruction", "input", "prompt"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise RecordError(f"{where}: field {name!r} must be a string, got {type(raw[name]).__name__}")
    prompt = raw.get("prompt")
    if not prompt:
        if not raw.get("instruction"):
            raise RecordError(f"{where}: needs a non-empty 'instruction' (or a 'prompt')")
        prompt = format_prompt(raw["instruction"], raw.get("input") or "")
    output = raw.get("output")
    if output is None:
        references = []
    elif isinstance(output, str):
        references = [output]
    elif isinstance(output, list) and all(isinstance(o, str) for o in output):
        references = list(output)
    else:
        raise RecordError(f"{where}: field 'output' must be a string or a list of strings, got {output!r:.60}")
    if require_output and not any(r.strip() for r in references):
        raise RecordError(f"{where}: field 'output' is missing or empty")
    return Record(prompt, references, raw.get("instruction") or "", raw.get("input") or "")


def fit_prompt(tokenizer, record: Record, max_tokens: int) -> Record:
    """``record`` with a prompt of at most ``max_tokens`` tokens that keeps the instruction: when the
    filled template is too long, the *input* (context) is cut from its end until the prompt fits; only
    when the instruction alone does not fit is the prompt cut from the left (the old behaviour, which
    dropped the instruction of long-context records). Records without a separate instruction (a
    ``prompt`` given verbatim) are left-truncated by the tokenisation as before."""

    def length(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    if not record.instruction or length(record.prompt) <= max_tokens or not record.input:
        return record
    empty = length(format_prompt(record.instruction, " "))
    input_ids = tokenizer(record.input, add_special_tokens=False)["input_ids"]
    keep = max(max_tokens - empty, 0)
    while keep > 0:
        cut = tokenizer.decode(input_ids[:keep]).strip() + " ..."
        prompt = format_prompt(record.instruction, cut)
        if length(prompt) <= max_tokens:
            return Record(prompt, record.references, record.instruction, cut)
        keep -= max(1, length(prompt) - max_tokens)
    return Record(format_prompt(record.instruction), record.references, record.instruction, "")


def shared_set_path(name: str) -> Path:
    """The file of a shared MiniLLM set; a :class:`RecordError` naming where it was looked for if absent."""
    root = shared_data_root(DATA_ENV)
    if root is None:
        raise MissingSharedSet(
            f"shared evaluation set {name!r}: no shared/data folder above {Path.cwd()}; "
            f"set {DATA_ENV} to the folder that holds instruction/{name}.jsonl"
        )
    path = root / "instruction" / f"{name}.jsonl"
    if not path.is_file():
        raise MissingSharedSet(f"shared evaluation set {name!r} not found at {path} (set {DATA_ENV} to another folder)")
    return path


def load_records(source: str, split: str = "train", limit: int = 0, require_output: bool = False) -> list[Record]:
    """Records from a shared-set name (``dolly_test``...), a local ``.jsonl``/``.json`` file or a hub id
    (``MiniLLM/dolly``, loaded with ``datasets``). ``limit`` keeps the first N. A local path that does
    not exist is an error, never a hub lookup."""
    path = shared_set_path(source) if source in SHARED_SETS else require_local(source)
    if path is not None:
        raws = read_records(path, limit)
    else:
        import datasets

        raws = list(datasets.load_dataset(source, split=split))[: limit or None]
    return parse_records(raws, lambda raw, i: parse_record(raw, i, source, require_output), source)


@dataclass
class Example:
    """A tokenised training example; ``labels`` are ``-100`` on the prompt. ``offsets``: each token's
    character span in prompt + response (EOS: one virtual character past the end), when asked for
    (cross-tokenizer alignment)."""

    index: int
    input_ids: list[int]
    labels: list[int]
    offsets: list[tuple[int, int]] | None = None


def tokenize_example(
    tokenizer,
    index: int,
    prompt: str,
    response: str,
    max_prompt_tokens: int,
    max_response_tokens: int,
    with_offsets: bool = False,
) -> Example:
    """Prompt (left-truncated) + response (right-truncated) + EOS; loss on response and EOS only."""
    prompt_enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=with_offsets)
    response_enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=with_offsets)
    prompt_ids = prompt_enc["input_ids"][-max_prompt_tokens:]
    response_ids = response_enc["input_ids"][: max_response_tokens - 1]
    offsets = None
    if with_offsets:
        end = len(prompt) + len(response)
        offsets = [
            *[tuple(o) for o in prompt_enc["offset_mapping"][-max_prompt_tokens:]],
            *[(a + len(prompt), b + len(prompt)) for a, b in response_enc["offset_mapping"][: max_response_tokens - 1]],
            (end, end + 1),
        ]
    response_ids = [*response_ids, tokenizer.eos_token_id]
    return Example(index, prompt_ids + response_ids, [IGNORE] * len(prompt_ids) + response_ids, offsets)


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask, labels, index."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[row, : len(e.labels)] = torch.tensor(e.labels)
        mask[row, : len(e.input_ids)] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "index": torch.tensor([e.index for e in examples]),
    }


class BatchSchedule:
    """Which examples each (step, micro-batch, rank) sees: a stream of seeded per-epoch permutations.

    A global step consumes ``batch_size * world_size * accumulation`` examples; micro-batch m of rank r
    takes slice ``m * world_size + r`` of it. So the position in the data is a function of the step
    alone (exact resume), and 2 ranks x 1 micro-batch see what 1 rank x 2 micro-batches sees.
    """

    def __init__(self, num_examples: int, batch_size: int, world_size: int = 1, accumulation: int = 1, seed: int = 0):
        if num_examples == 0:
            raise ConfigError("the training set is empty")
        self.n, self.batch_size, self.world_size, self.accumulation, self.seed = (
            num_examples,
            batch_size,
            world_size,
            accumulation,
            seed,
        )
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(self.seed + epoch)
            self._perms[epoch] = torch.randperm(self.n, generator=gen).tolist()
        return self._perms[epoch]

    def indices(self, step: int, micro: int = 0, rank: int = 0) -> list[int]:
        global_size = self.batch_size * self.world_size * self.accumulation
        start = step * global_size + (micro * self.world_size + rank) * self.batch_size
        return [self._perm(p // self.n)[p % self.n] for p in range(start, start + self.batch_size)]
