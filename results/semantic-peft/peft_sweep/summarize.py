"""Summarise the dev-split learning-rate sweep of IA3, prompt tuning and prefix tuning
(results/semantic-peft/peft_sweep/*/results.json) into summary.md, best lr per method first.

Dev split: 40 built-in facts drawn with builtin_seed=1 (the evaluation rows use builtin_seed=0;
no subject or prompt is shared), 4 epochs, batch 16, the default config otherwise.
Run: python results/semantic-peft/peft_sweep/summarize.py results/semantic-peft/peft_sweep
Choice rule: highest mean exact match on the trained dev facts, ties broken by paraphrase EM.
"""

import json
import sys
from pathlib import Path

from shared_utils.intervals import mean_interval

root = Path(sys.argv[1])
groups: dict[tuple[str, float], list[dict]] = {}
for path in sorted(root.glob("*/results.json")):
    record = json.loads(path.read_text())
    key = (record["config"]["peft"]["method"], float(record["config"]["train"]["lr"]))
    groups.setdefault(key, []).append({**record["metrics"], "train_time_s": record["train_time_s"]})
keys = ["train_em", "para_em", "train_acc", "locality_token", "distance_final_mean", "paraphrase_pushed_away_fraction"]


def cell(values):
    mean, half = mean_interval(values)
    return f"{mean:.3f}" + (f" ± {half:.3f}" if half is not None else "")


def score(key):
    runs = groups[key]
    return (mean_interval([r["train_em"] for r in runs])[0], mean_interval([r["para_em"] for r in runs])[0])


lines = [
    "| method | lr | seeds | " + " | ".join(keys) + " | train s |",
    "|" + "---|" * (len(keys) + 4),
]
best = {}
for key in sorted(groups):
    method, lr = key
    runs = groups[key]
    if method not in best or score(key) > score((method, best[method])):
        best[method] = lr
    cells = [cell([r[k] for r in runs]) for k in keys]
    time_s = mean_interval([r["train_time_s"] for r in runs])[0]
    lines.append(f"| {method} | {lr:g} | {len(runs)} | " + " | ".join(cells) + f" | {time_s:.0f} |")
lines += ["", "Chosen (highest mean train_em, then para_em): " + ", ".join(f"{m} lr {lr:g}" for m, lr in best.items())]
text = "\n".join(lines) + "\n"
(root / "summary.md").write_text(text)
print(text)
