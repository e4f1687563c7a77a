"""Append (or replace) one probe in probes.json: python record.py NAME RUN [--key value overrides...]

Reads the run's train_summary.json (steps/s, last logged loss terms) and samples.jsonl (dev BLEU
by bleu.py's rule, first 5 hypotheses); the overrides are the ones given to probe.sh.
"""

import json
import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
name, run, rest = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
overrides = {}
for i in range(0, len(rest) - 1, 2):
    value = rest[i + 1]
    try:
        value = json.loads(value)
    except ValueError:
        pass
    overrides[rest[i].lstrip("-")] = value
summary = json.loads((run / "train_summary.json").read_text())
bleu = float(subprocess.run([sys.executable, str(here / "bleu.py"), str(run)], capture_output=True, text=True).stdout)
samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()[:5]]
entry = {
    "name": name,
    "overrides": overrides,
    "train_steps_per_s": summary["steps_per_s"],
    "train_time_s": summary["train_time_s"],
    "final_loss": summary["loss_history"][-1] if summary["loss_history"] else None,
    "dev_bleu": round(bleu, 4),
    "first_samples": [{"src": s["src"], "ref": s["ref"], "hyp": s["hyp"]} for s in samples],
}
path = here / "probes.json"
data = json.loads(path.read_text())
data["probes"] = [p for p in data["probes"] if p["name"] != name] + [entry]
path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
print(json.dumps({k: entry[k] for k in ("name", "dev_bleu", "train_steps_per_s")}))
