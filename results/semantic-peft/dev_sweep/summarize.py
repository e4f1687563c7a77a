"""Summarise the dev-split re-weighting sweep (results/semantic-peft/dev_sweep/*/results.json) into summary.md.

Dev split: 40 built-in facts drawn with builtin_seed=1 (the evaluation rows use builtin_seed=0),
4 epochs, batch 16, LoRA defaults. Intervals: mean +- t(0.975, n-1) * sd / sqrt(n) over seeds.
"""

import json
import sys
from pathlib import Path

from shared_utils.intervals import mean_interval

root = Path(sys.argv[1])
groups: dict[str, list[dict]] = {}
for path in sorted(root.glob("*/results.json")):
    name = path.parent.name
    base = name.rsplit("_s", 1)[0] if name[-3:-1] == "_s" else name
    groups.setdefault(base, []).append(json.loads(path.read_text())["metrics"])
keys = ["train_em", "para_em", "locality", "weight_ess_fraction_mean", "weight_max", "pushed_away_fraction"]


def cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean, half = mean_interval(values)
    return f"{mean:.3f}" + (f" ± {half:.3f}" if half is not None else "")


lines = ["| run | seeds | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
for base, runs in groups.items():
    lines.append(f"| {base} | {len(runs)} | " + " | ".join(cell([r.get(k) for r in runs]) for k in keys) + " |")
text = "\n".join(lines) + "\n"
(root / "summary.md").write_text(text)
print(text)
