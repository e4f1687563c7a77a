"""Editing metrics (EasyEdit definitions) and the evaluation of an editor on edit requests.

- Reliability / Generality: teacher-forced token accuracy of the target tokens after the edit
  prompt / its paraphrase: at each target position, is the argmax the target token; averaged
  over the target tokens of an example, then over examples.
- Locality: on the locality prompt + its answer, the fraction of answer positions where the
  edited model's argmax equals the unedited model's argmax. Scored apart for each kind of probe
  (``PROBES``): the data set's own (``loc``), neighbourhood (``loc_nbhd``: same relation, another
  subject) and same subject, another relation (``loc_same``), the last two over the edits that
  have such a probe.
- Exact match (second view): greedy decoding reproduces the target tokens exactly.
- Generation-based scores (:func:`generation_scores`, on the final model): the greedy answer
  (as many new tokens as the reference has) scored by exact match and token F1 (multiset overlap
  of token ids, SQuAD-style) against the target for Rel/Gen, and against the unedited model's
  greedy answer for Loc; fluency: the repetition rate of greedy continuations after the edit
  prompts and the perplexity on held-out unrelated text, each beside the unedited model's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from lemoe.config import TrainConfig
from lemoe.data import EditRequest
from lemoe.training import SequentialEditor, encode_texts, left_padded, prepare_eval


def token_accuracy(predictions: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> list[float]:
    """Per example: mean of (predicted token == target token) over the target positions."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    out = []
    for i, (p, t) in enumerate(zip(predictions, targets, strict=True)):
        if p.shape != t.shape or t.numel() == 0:
            raise ValueError(f"example {i}: prediction shape {tuple(p.shape)} does not match target {tuple(t.shape)}")
        out.append((p == t).float().mean().item())
    return out


def exact_match(generated: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> list[float]:
    """Per example: 1.0 when the generated tokens start with exactly the target tokens."""
    return [
        float(g.numel() >= t.numel() and torch.equal(g[: t.numel()], t))
        for g, t in zip(generated, targets, strict=True)
    ]


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


@dataclass
class EvalSets:
    """Encoded Rel/Gen/Loc batches (with cached lower-layer states) and the unedited Loc argmax."""

    rel: list[dict[str, torch.Tensor]]
    gen: list[dict[str, torch.Tensor]]
    loc: list[dict[str, torch.Tensor]]
    loc_reference: list[torch.Tensor]
    requests: list[EditRequest] = field(default_factory=list)
    unrelated: list[str] = field(default_factory=list)
    unedited: dict = field(default_factory=dict)  # the unedited model's greedy Loc answers and fluency
    # metric name -> (encoded probe batches, the unedited model's argmax) for the extra locality kinds
    probes: dict[str, tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]] = field(default_factory=dict)


PROBES = {"loc_nbhd": "neighbourhood", "loc_same": "same_subject"}  # metric -> EditRequest field prefix


def build_eval_sets(
    model,
    tokenizer,
    requests: list[EditRequest],
    layer: int,
    batch_size: int = 32,
    cache_prefix: bool = True,
    unrelated: Sequence[str] = (),
    generation: bool = False,
) -> EvalSets:
    """Encode the three views of ``requests`` and record the *unedited* model's locality argmax; with
    ``generation`` also its greedy locality answers, repetition rate and perplexity on ``unrelated``."""

    def enc(prompts, answers):
        return prepare_eval(model, tokenizer, prompts, answers, layer, batch_size, cache_prefix)

    targets = [r.target for r in requests]
    loc = enc([r.locality_prompt for r in requests], [r.locality_answer for r in requests])
    unedited = SequentialEditor(model, tokenizer, layer, TrainConfig(progress=False))
    reference, _ = unedited.predict(loc)
    sets = EvalSets(
        enc([r.prompt for r in requests], targets),
        enc([r.rephrase for r in requests], targets),
        loc,
        reference,
        list(requests),
        unrelated,
    )
    for name, kind in PROBES.items():
        having = [r for r in requests if getattr(r, f"{kind}_prompt")]
        if having:
            batches = enc(
                [getattr(r, f"{kind}_prompt") for r in having], [getattr(r, f"{kind}_answer") for r in having]
            )
            sets.probes[name] = (batches, unedited.predict(batches)[0])
    if generation:
        answers, _ = greedy(unedited, [r.locality_prompt for r in requests], [r.locality_answer for r in requests])
        sets.unedited = {"loc_answers": answers, **fluency(unedited, sets)}
    return sets


def evaluate(editor, sets: EvalSets) -> dict[str, float]:
    """Rel, Gen, Loc (teacher-forced token accuracy), their average, and exact match for Rel/Gen.

    Exact match is computed from the teacher-forced argmax (all target tokens right): greedy
    decoding reproduces the target exactly if and only if that holds, because each greedy step
    then sees the same prefix as teacher forcing (checked against ``generate`` in the tests).
    """
    p, t = editor.predict(sets.rel)
    rel, rel_em = mean(token_accuracy(p, t)), mean(exact_from_teacher_forcing(p, t))
    p, t = editor.predict(sets.gen)
    gen, gen_em = mean(token_accuracy(p, t)), mean(exact_from_teacher_forcing(p, t))
    p, _ = editor.predict(sets.loc)
    loc = mean(token_accuracy(p, sets.loc_reference))
    return {"rel": rel, "gen": gen, "loc": loc, "avg": (rel + gen + loc) / 3, "rel_em": rel_em, "gen_em": gen_em}


def exact_from_teacher_forcing(predictions: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> list[float]:
    """Per example: 1.0 when every teacher-forced argmax equals its target token."""
    return [float(torch.equal(p, t)) for p, t in zip(predictions, targets, strict=True)]


@torch.no_grad()
def greedy(
    editor, prompts: list[str], answers: list[str], batch_size: int = 32, max_new_tokens: int | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(greedy ``generate`` continuation, answer token ids) per example; the continuation has as many
    tokens as the longest answer of its chunk (``max_new_tokens`` when given)."""
    tok = editor.tokenizer
    targets = [torch.tensor(tok(" " + a.strip(), add_special_tokens=False)["input_ids"]) for a in answers]
    generated = []
    for start in range(0, len(prompts), batch_size):
        ids, mask = left_padded(tok, [tok(p)["input_ids"] for p in prompts[start : start + batch_size]], editor.device)
        n_new = max_new_tokens or max(t.numel() for t in targets[start : start + batch_size])
        out = editor.generate(ids, mask, n_new)[:, ids.shape[1] :].cpu()
        generated.extend(out[row] for row in range(out.shape[0]))
    return generated, targets


def token_f1(generated: torch.Tensor, target: torch.Tensor) -> float:
    """F1 of the multiset overlap of token ids (SQuAD's token F1 on the tokenizer's tokens)."""
    common = sum((Counter(generated.tolist()) & Counter(target.tolist())).values())
    if common == 0:
        return 0.0
    precision, recall = common / generated.numel(), common / target.numel()
    return 2 * precision * recall / (precision + recall)


def repeats(tokens: torch.Tensor, times: int = 3, ignore: frozenset[int] = frozenset(), max_n: int = 1) -> bool:
    """Whether some run of 1 to ``max_n`` tokens occurs ``times`` or more times back to back, tokens in
    ``ignore`` skipped: with ``max_n = 1`` one token ("Realms Realms Realms"), with a larger ``max_n``
    also a phrase ("Yemen? Yemen? Yemen?", "The Matrix. The Matrix. The Matrix.")."""
    values = [t for t in tokens.tolist() if t not in ignore]
    for n in range(1, max_n + 1):
        for start in range(len(values) - n * times + 1):
            unit = values[start : start + n]
            if all(values[start + k * n : start + (k + 1) * n] == unit for k in range(1, times)):
                return True
    return False


PHRASE_TOKENS = 8  # the longest repeated unit counted by the phrase repetition rate


CONTINUATION_TOKENS = 24


def blank_tokens(tokenizer, ids: list[int]) -> frozenset[int]:
    """The ids among ``ids`` that decode to whitespace only, and the pad and end ids (runs of newlines or
    padding after an end of text are no repetition of content); none when the tokenizer cannot decode."""
    pad = {i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None}
    if not hasattr(tokenizer, "decode"):
        return frozenset(pad)
    return frozenset(pad | {i for i in ids if not tokenizer.decode([i]).strip()})


@torch.no_grad()
def fluency(editor, sets: EvalSets, continuations: list[torch.Tensor] | None = None) -> dict[str, float]:
    """Repetition rates of greedy continuations after the edit prompts (a non-blank token, and a run of up
    to ``PHRASE_TOKENS`` tokens, 3+ times back to back within ``CONTINUATION_TOKENS`` new tokens, blank
    tokens skipped) and perplexity of ``sets.unrelated``
    (the routing, if any, decided on each whole text). ``continuations``, when given, receives the
    continuations' token ids."""
    out = {}
    requests = sets.requests
    if requests:
        prompts = [r.prompt for r in requests]
        generated, _ = greedy(editor, prompts, ["x"] * len(prompts), max_new_tokens=CONTINUATION_TOKENS)
        if continuations is not None:
            continuations.extend(generated)
        ignore = blank_tokens(editor.tokenizer, torch.cat(generated).unique().tolist())
        out["repetition"] = mean([float(repeats(c, ignore=ignore)) for c in generated])
        out["repetition_phrase"] = mean([float(repeats(c, ignore=ignore, max_n=PHRASE_TOKENS)) for c in generated])
    if sets.unrelated:
        enc = encode_texts(editor.tokenizer, list(sets.unrelated), editor.device)
        logits = editor.logits(enc["input_ids"], enc["attention_mask"], enc["attention_mask"])
        keep = enc["attention_mask"][:, 1:].bool()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1][keep].float(), enc["input_ids"][:, 1:][keep])
        out["ppl"] = math.exp(float(nll))
    return out


def generation_scores(editor, sets: EvalSets, samples: list[dict] | None = None) -> dict[str, list[float] | float]:
    """Per-example greedy exact match and token F1 (Rel/Gen vs the target, Loc vs the unedited model's
    greedy answer), and the fluency numbers with their ratio to the unedited model's. ``samples``, when
    given, receives one dict per request with the texts behind the scores (prompts, target, the greedy
    answers, the unedited model's locality answer, the 24-token continuation), so they can be read."""
    out: dict[str, list[float] | float] = {}
    requests = sets.requests
    targets = [r.target for r in requests]
    texts: dict[str, list[torch.Tensor]] = {}
    for key, prompts in (("rel", [r.prompt for r in requests]), ("gen", [r.rephrase for r in requests])):
        generated, answers = greedy(editor, prompts, targets)
        texts[key] = generated
        out[f"{key}_gen_em"] = exact_match(generated, answers)
        out[f"{key}_gen_f1"] = [token_f1(g[: a.numel()], a) for g, a in zip(generated, answers, strict=True)]
    reference = sets.unedited["loc_answers"]
    generated, answers = greedy(editor, [r.locality_prompt for r in requests], [r.locality_answer for r in requests])
    texts["loc"] = generated
    pairs = [(g[: a.numel()], r[: a.numel()]) for g, r, a in zip(generated, reference, answers, strict=True)]
    out["loc_gen_em"] = [float(torch.equal(g, r)) for g, r in pairs]
    out["loc_gen_f1"] = [token_f1(g, r) for g, r in pairs]
    continuations: list[torch.Tensor] = []
    for name, value in fluency(editor, sets, continuations).items():
        out[name] = value
        out[f"{name}_unedited"] = sets.unedited[name]
    if "ppl" in out:
        out["ppl_ratio"] = out["ppl"] / out["ppl_unedited"]
    if samples is not None:
        decode = editor.tokenizer.decode
        for i, r in enumerate(requests):
            samples.append(
                {
                    "prompt": r.prompt,
                    "target": r.target,
                    "rel_greedy": decode(texts["rel"][i]),
                    "rephrase": r.rephrase,
                    "gen_greedy": decode(texts["gen"][i]),
                    "locality_prompt": r.locality_prompt,
                    "loc_greedy": decode(texts["loc"][i]),
                    "loc_unedited": decode(reference[i]),
                    "continuation": decode(continuations[i]) if continuations else "",
                }
            )
    return out
