"""Batched generation with left padding (greedy or seeded sampling), and the teacher-answer cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from shared_utils.results import atomic_write_text


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 16,
             max_prompt_tokens: int = 192, do_sample: bool = False, seed: int = 0, temperature: float = 1.0,
             top_p: float = 1.0, desc: str = "generate") -> list[str]:
    """Responses (decoded, special tokens dropped, stripped) for ``prompts``, batched with left padding.

    Sampling is seeded once per call, so a (model, prompts, seed) triple always gives the same text.
    """
    device = next(model.parameters()).device
    if do_sample:
        torch.manual_seed(seed)
    outputs: list[str] = []
    was_training = model.training
    model.eval()
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
        chunk = prompts[start: start + batch_size]
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"][-max_prompt_tokens:] for p in chunk]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, width - len(e):] = torch.tensor(e)
            mask[row, width - len(e):] = 1
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {
            "do_sample": False}
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **sampling)
        outputs.extend(tokenizer.batch_decode(out[:, width:], skip_special_tokens=True))
    model.train(was_training)
    return [o.strip() for o in outputs]


def teacher_answers(teacher, tokenizer, prompts: list[str], teacher_name: str, cache_dir: str | Path,
                    max_new_tokens: int, max_prompt_tokens: int, batch_size: int = 16) -> list[str]:
    """The teacher's greedy answers to ``prompts``, generated once and cached as JSONL under ``cache_dir``
    (keyed by teacher, prompts and lengths)."""
    key = hashlib.sha256(json.dumps([teacher_name, prompts, max_new_tokens, max_prompt_tokens]).encode()).hexdigest()
    path = Path(cache_dir).expanduser() / f"teacher_answers_{key[:16]}.jsonl"
    if path.is_file():
        answers = [json.loads(line)["output"] for line in path.read_text().splitlines()]
        if len(answers) == len(prompts):
            return answers
    answers = generate(teacher, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       max_prompt_tokens=max_prompt_tokens, desc="teacher answers")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps({"prompt": p, "output": a}) + "\n" for p, a in zip(prompts, answers)))
    return answers
