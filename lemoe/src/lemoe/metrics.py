"""Editing metrics (EasyEdit definitions) and the evaluation of an editor on edit requests.

- Reliability / Generality: teacher-forced token accuracy of the target tokens after the edit
  prompt / its paraphrase: at each target position, is the argmax the target token; averaged
  over the target tokens of an example, then over examples.
- Locality: on the locality prompt + its answer, the fraction of answer positions where the
  edited model's argmax equals the unedited model's argmax.
- Exact match (second view): greedy decoding reproduces the target tokens exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lemoe.config import TrainConfig
from lemoe.data import EditRequest
from lemoe.training import SequentialEditor, prepare_eval


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


def build_eval_sets(
    model, tokenizer, requests: list[EditRequest], layer: int, batch_size: int = 32, cache_prefix: bool = True
) -> EvalSets:
    """Encode the three views of ``requests`` and record the *unedited* model's locality argmax."""

    def enc(prompts, answers):
        return prepare_eval(model, tokenizer, prompts, answers, layer, batch_size, cache_prefix)

    targets = [r.target for r in requests]
    loc = enc([r.locality_prompt for r in requests], [r.locality_answer for r in requests])
    reference, _ = SequentialEditor(model, tokenizer, layer, TrainConfig(progress=False)).predict(loc)
    return EvalSets(
        enc([r.prompt for r in requests], targets), enc([r.rephrase for r in requests], targets), loc, reference
    )


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
    editor, prompts: list[str], answers: list[str], batch_size: int = 32
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(greedy ``generate`` continuation with as many tokens as the answer, answer token ids) per example."""
    tok = editor.tokenizer
    targets = [torch.tensor(tok(" " + a.strip(), add_special_tokens=False)["input_ids"]) for a in answers]
    generated = []
    for start in range(0, len(prompts), batch_size):
        chunk = [tok(p)["input_ids"] for p in prompts[start : start + batch_size]]
        width = max(len(c) for c in chunk)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(c)) + c for c in chunk], device=editor.device)
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunk], device=editor.device)
        n_new = max(t.numel() for t in targets[start : start + batch_size])
        out = editor.generate(ids, mask, n_new)[:, width:].cpu()
        generated.extend(out[row] for row in range(out.shape[0]))
    return generated, targets
