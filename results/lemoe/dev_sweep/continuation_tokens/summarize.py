"""summary.md of the anti-hijack dev sweep: one row per (continuation_weight w, continuation_tokens k).

Usage (repository root): python results/lemoe/dev_sweep/continuation_tokens/summarize.py DIR
where DIR holds the w<w>_k<k>/lemoe.json files that sweep.sh wrote; summary.md goes next to this file.
Columns are the package's own seed-table metrics (lemoe.experiment.SEED_METRICS), read from each row file;
the unedited model's rates, which every row file records, go in the note under the table.
"""

import json
import sys
from pathlib import Path

from lemoe.experiment import SEED_METRICS


def main(folder: Path) -> str:
    rows = []
    for path in sorted(folder.glob("w*_k*/lemoe.json")):
        r = json.loads(path.read_text())
        train = r["config"]["lemoe"]["train"]
        rows.append((train["continuation_weight"], train["continuation_tokens"], r))
    rows.sort(key=lambda x: (x[0], x[1]))
    m0 = rows[0][2]["metrics"]
    lines = [
        "| w | k | " + " | ".join(SEED_METRICS.values()) + " | steps per batch | train s | commit |",
        "| --- | --- | " + " | ".join("---" for _ in SEED_METRICS) + " | --- | --- | --- |",
    ]
    for w, k, r in rows:
        cells = [f"{r['metrics'][key]:.3f}" if key in r["metrics"] else "–" for key in SEED_METRICS]
        lines.append(
            f"| {w:g} | {k} | " + " | ".join(cells) + f" | {r['steps_per_batch']} | {r['timing']['train_s']:.0f} | "
            f"{r['git_commit'][:7]} |"
        )
    note = (
        f"\n\nUnedited model on the same prompts: repetition {m0.get('repetition_unedited', float('nan')):.3f}, "
        f"phrase rep. {m0.get('repetition_phrase_unedited', float('nan')):.3f}, perplexity "
        f"{m0.get('ppl_unedited', float('nan')):.2f}. Data: the first 100 valid records of "
        "`zsre_mend_train_1000.json` (T = 100, batches of 20, seed 0, LEMoE only, zsre_t100 settings otherwise).\n"
    )
    return "\n".join(lines) + note


if __name__ == "__main__":
    text = main(Path(sys.argv[1]))
    (Path(__file__).parent / "summary.md").write_text(text)
    print(text)
