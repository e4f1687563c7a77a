"""Phrase repetition rate of the committed rows, rescored from their saved continuations.

The metric `repetition_phrase` (lemoe.metrics.repeats with max_n = PHRASE_TOKENS) came after these
runs, so it is computed here from each row file's `samples[*].continuation` (re-tokenised with the
SmolLM2 tokenizer; the token-level rate recomputed the same way is printed beside the file's own
value as a check), and the unedited model's rates from fresh greedy continuations of the same
prompts (the first 100 valid records of each data set, as the runs used).
Run from the repository root:
    python results/lemoe/phrase_repetition/rescore.py > results/lemoe/phrase_repetition/README.md
"""

import glob
import json
from pathlib import Path

import torch
from transformers import AutoTokenizer

from lemoe.config import TrainConfig
from lemoe.data import load_edits
from lemoe.metrics import CONTINUATION_TOKENS, PHRASE_TOKENS, blank_tokens, greedy, repeats
from lemoe.training import SequentialEditor
from shared_utils.models import load_causal_lm, resolve_model

torch.set_num_threads(1)
tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct").path)


def rates(continuations):
    ignore = blank_tokens(tok, torch.cat(continuations).unique().tolist())
    token = sum(repeats(c, ignore=ignore) for c in continuations) / len(continuations)
    phrase = sum(repeats(c, ignore=ignore, max_n=PHRASE_TOKENS) for c in continuations) / len(continuations)
    return token, phrase


print("# Phrase repetition of the committed rows (rescored)\n")
print(__doc__.split("Run from")[0].strip(), "\n")
print("| rows | prompts | token-level rate (file's) | phrase rate |")
print("| --- | --- | --- | --- |")
model, _ = load_causal_lm("smollm2-135m-instruct")
unedited = SequentialEditor(model, tok, 25, TrainConfig(progress=False))
for data, fmt in (
    ("shared:knowledge-editing/zsre_mend_eval_1000.json", "zsre"),
    ("shared:knowledge-editing/counterfact_edit_1000.json", "counterfact"),
):
    requests = load_edits(data, fmt, limit=100, skip_invalid=True)
    prompts = [r.prompt for r in requests]
    generated, _ = greedy(unedited, prompts, ["x"] * len(requests), max_new_tokens=CONTINUATION_TOKENS)
    token, phrase = rates(generated)
    print(f"| unedited model on {data.split('/')[-1]} | {len(generated)} | {token:.3f} | {phrase:.3f} |")
for path in sorted(glob.glob("results/lemoe/*/*.json")):
    row = json.loads(Path(path).read_text())
    if not row.get("samples") or "_gate_" in path:
        continue
    continuations = [
        torch.tensor(tok(s["continuation"], add_special_tokens=False)["input_ids"] or [tok.eos_token_id])
        for s in row["samples"]
    ]
    token, phrase = rates(continuations)
    print(
        f"| `{path}` ({row['label']}) | {len(continuations)} | {token:.3f} ({row['metrics']['repetition']:.3f}) "
        f"| {phrase:.3f} |"
    )
