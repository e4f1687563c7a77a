"""summary.md of the AlphaEdit dev sweep: one row per (ridge λ, null-space threshold, key positions).

Usage (repository root): python results/lemoe/dev_sweep/alphaedit/summarize.py DIR
where DIR holds the l2<λ>_thr<threshold>_<keys>/alphaedit.json files that sweep.sh wrote; summary.md goes next
to this file, rows sorted by Avg (the selection criterion). Teacher-forced metrics only (the sweep runs without
generation metrics).
"""

import json
import sys
from pathlib import Path

COLUMNS = {
    "rel": "Rel",
    "gen": "Gen",
    "loc": "Loc (NQ)",
    "avg": "Avg",
    "rel_em": "Rel EM (tf)",
    "gen_em": "Gen EM (tf)",
}


def main(folder: Path) -> str:
    rows = []
    for path in sorted(folder.glob("l2*_thr*_*/alphaedit.json")):
        r = json.loads(path.read_text())
        rows.append((r["config"]["baselines"]["alphaedit"], r))
    rows.sort(key=lambda x: -x[1]["metrics"]["avg"])
    lines = [
        "| λ (l2) | threshold | keys | " + " | ".join(COLUMNS.values()) + " | train s | commit |",
        "| --- | --- | --- | " + " | ".join("---" for _ in COLUMNS) + " | --- | --- |",
    ]
    for ae, r in rows:
        cells = [f"{r['metrics'][key]:.3f}" for key in COLUMNS]
        lines.append(
            f"| {ae['l2']:g} | {ae['nullspace_threshold']:g} | {ae['keys']} | "
            + " | ".join(cells)
            + f" | {r['timing']['train_s']:.0f} | {r['git_commit'][:7]} |"
        )
    note = (
        "\n\nData: the first 100 valid records of `zsre_mend_train_1000.json` (T = 100, batches of 20, seed 0, "
        "zsre_t100 settings otherwise, AlphaEdit only); (tf): exact match from the teacher-forced pass.\n"
    )
    return "\n".join(lines) + note


if __name__ == "__main__":
    text = main(Path(sys.argv[1]))
    (Path(__file__).parent / "summary.md").write_text(text)
    print(text)
