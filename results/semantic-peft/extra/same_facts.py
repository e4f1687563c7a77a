"""Same-facts comparison from the committed seed folders: exact match of each row on the facts the
filter keeps (and on the facts it drops), per seed, mean and 95% t-interval over seeds.

Run: python results/semantic-peft/extra/same_facts.py results/semantic-peft > results/semantic-peft/extra/same_facts.md
"""

import json
import sys
from pathlib import Path

from semantic_peft.seeds import mean_interval, seed_folders

root = Path(sys.argv[1])
rows: dict[str, dict[str, list[float]]] = {}
for folder in seed_folders(root):
    filtered = json.loads(next(folder.glob("*_lora_filter.json")).read_text())["details"]["filter"]
    dropped = {d["fact"] for d in filtered["dropped_facts"]}
    for path in sorted(folder.glob("0[1-9]_*.json")):
        record = json.loads(path.read_text())
        per_fact = record["details"]["per_fact"]
        kept = [em for fact, em in zip(per_fact["fact"], per_fact["train_em"]) if fact not in dropped]
        gone = [em for fact, em in zip(per_fact["fact"], per_fact["train_em"]) if fact in dropped]
        row = rows.setdefault(record["label"], {"kept": [], "dropped": []})
        row["kept"].append(sum(kept) / len(kept))
        row["dropped"].append(sum(gone) / len(gone))
print(
    f"Exact match on the {len(kept)} facts the filter keeps and the {len(gone)} it drops "
    f"(same facts for every row and seed), mean ± 95% t-interval over {len(next(iter(rows.values()))['kept'])} seeds:\n"
)
print("| Method | EM on kept facts | minus LoRA's, paired by seed | EM on dropped facts |\n| --- | --- | --- | --- |")
lora = rows["LoRA"]["kept"]
for label, row in rows.items():
    cells = []
    for values in (row["kept"], [a - b for a, b in zip(row["kept"], lora)], row["dropped"]):
        mean, half = mean_interval(values)
        cells.append(f"{mean:+.3f}" if values is not row["kept"] and values is not row["dropped"] else f"{mean:.3f}")
        cells[-1] += f" ± {half:.3f}" if half else ""
    print(f"| {label} | " + " | ".join(cells) + " |")
