"""The paper's findings checked against the committed results: one line per claim with what was
measured here (mean ± 95% t-interval over seeds) and a verdict, plus one cross-method figure.

Each claim is a *difference* expected to have a sign (e.g. filtered EM minus plain LoRA EM > 0),
computed per seed from the rows' results JSON and paired by seed; its interval is the Student-t
interval over seeds (:func:`shared_utils.intervals.mean_interval`). Verdict (:func:`verdict`):

* **holds**: the interval lies entirely on the claimed side of 0;
* **does not hold**: it lies entirely on the other side, or every seed measured exactly 0;
* **inside the noise**: it contains 0;
* **one seed**: no interval can be formed.

Written by :func:`write_claims` (called by ``semantic-peft reproduce``'s aggregation) into
``claims.md``, ``claims.json`` and ``figures/methods.png`` of the results folder, and into the
README between ``<!-- claims:start -->`` and ``<!-- claims:end -->`` when one is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semantic_peft.seeds import seed_folders
from shared_utils.intervals import mean_interval
from shared_utils.results import atomic_write_json, atomic_write_text, load_results, replace_marked_section

HOLDS, FAILS, NOISE, ONE_SEED = "holds", "does not hold", "inside the noise", "one seed (no interval)"
# relations whose targets are invented proper nouns, years or places vs common words
HARD_RELATIONS = ("capital", "founder", "birth_year", "headquarters", "language")
EASY_RELATIONS = ("profession", "instrument", "flag_colour")
PEFT_ROWS = {"lora": "LoRA", "ia3": "IA3", "prompt_tuning": "prompt tuning", "prefix_tuning": "prefix tuning"}
# (metric, panel title) of the cross-method figure
FIGURE_METRICS = [
    ("train_em_trained", "exact match (trained facts)"),
    ("para_em", "paraphrase exact match"),
    ("locality_neighbourhood_token", "neighbourhood token agreement"),
    ("locality_unrelated_token", "unrelated token agreement"),
    ("distance_final_mean", "final distance d (train prompts)"),
]


def verdict(mean: float, half: float | None, direction: int = 1) -> str:
    """The verdict on a difference claimed to be ``> 0`` (``direction=1``) or ``< 0`` (``-1``),
    measured as ``mean ± half`` (``half`` None: a single seed)."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, got {direction}")
    if half is None:
        return ONE_SEED
    low, high = direction * mean - half, direction * mean + half
    if low > 0:
        return HOLDS
    if high < 0 or (half == 0 and mean == 0):
        return FAILS
    return NOISE


def paired_difference(a: dict[str, float], b: dict[str, float] | None = None) -> dict[str, Any]:
    """Mean and 95% t half-width of ``a[s] - b[s]`` over the seeds ``s`` both have (of ``a[s]``
    alone when ``b`` is None)."""
    seeds = sorted(set(a) & set(b)) if b is not None else sorted(a)
    if not seeds:
        raise ValueError("no seed in common")
    diffs = [a[s] - (b[s] if b is not None else 0.0) for s in seeds]
    mean, half = mean_interval(diffs)
    return {"mean": float(mean), "half": None if half is None else float(half), "seeds": seeds, "values": diffs}


def load_by_row(results_dir: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``{row name: {seed folder: record}}`` from every seed folder's results JSON."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for folder in seed_folders(results_dir):
        for record in load_results(folder):
            rows.setdefault(record.get("row", record["_file"]), {})[folder.name] = record
    curve = Path(results_dir) / "interference"  # semantic-peft interference --results <results>/interference
    if curve.is_dir() and list(curve.glob("seed_*.json")):
        rows["interference"] = {f"seed_{r['seed']}": r for r in load_results(curve, "seed_*.json")}
    return rows


def _curve_at_largest(records: dict[str, dict], key: str) -> dict[str, float]:
    """Per seed, ``key`` of the interference curve at the largest size every seed has."""
    largest = max(set.intersection(*(set(r["sizes"]) for r in records.values())))
    return {s: float(next(p for p in r["points"] if p["n"] == largest)[key]) for s, r in records.items()}


def _metric(records: dict[str, dict], key: str) -> dict[str, float]:
    return {s: float(r["metrics"][key]) for s, r in records.items() if r["metrics"].get(key) is not None}


def _per_fact_em(records: dict[str, dict], keep: Callable[[str, str], bool]) -> dict[str, float]:
    """Per seed, the exact match over the facts ``f`` with ``keep(seed, f)``, from ``details.per_fact``."""
    out = {}
    for seed, record in records.items():
        per_fact = record.get("details", {}).get("per_fact")
        if not per_fact:
            continue
        ems = [em for fact, em in zip(per_fact["fact"], per_fact["train_em"]) if keep(seed, fact)]
        if ems:
            out[seed] = sum(ems) / len(ems)
    return out


def _relation(fact_id: str) -> str:
    return fact_id.rsplit("-", 1)[0]


def _bucket(records: dict[str, dict], index: int) -> dict[str, float]:
    return {
        s: float(r["details"]["buckets_by_initial_distance"]["train_em"][index]["value"])
        for s, r in records.items()
        if "buckets_by_initial_distance" in r.get("details", {})
    }


def _alone_minus_joint(records: dict[str, dict]) -> tuple[dict[str, float], dict[str, float]]:
    alone, joint = {}, {}
    for s, r in records.items():
        pairs = r.get("details", {}).get("alone_vs_joint")
        if pairs:
            alone[s] = sum(p["alone_em"] for p in pairs) / len(pairs)
            joint[s] = sum(p["joint_em"] for p in pairs) / len(pairs)
    return alone, joint


@dataclass
class Claim:
    finding: str  # the paper's finding, in short
    measured: str  # what is compared here
    direction: int  # the sign the finding predicts for the difference
    values: Callable[[dict[str, dict[str, dict]]], tuple[dict[str, float], dict[str, float] | None]]
    needs: tuple[str, ...]  # rows it reads


def _claims() -> list[Claim]:
    def metric_diff(row_a: str, row_b: str | None, key: str):
        def values(rows):
            return _metric(rows[row_a], key), (_metric(rows[row_b], key) if row_b else None)

        return values

    def kept_facts(row: str):
        def values(rows):
            dropped = {
                s: {d["fact"] for d in r["details"]["filter"]["dropped_facts"]} for s, r in rows["lora_filter"].items()
            }

            def keep(seed, fact):
                return seed in dropped and fact not in dropped[seed]

            return _per_fact_em(rows[row], keep), _per_fact_em(rows["lora"], keep)

        return values

    def hard_vs_easy(rows):
        lora = rows["lora"]
        hard = _per_fact_em(lora, lambda s, f: _relation(f) in HARD_RELATIONS)
        easy = _per_fact_em(lora, lambda s, f: _relation(f) in EASY_RELATIONS)
        return hard, easy

    claims = [
        Claim(
            "PEFT learns specific new facts less well than full fine-tuning",
            "EM on trained facts, {a} minus full fine-tuning",
            -1,
            metric_diff(name, "full_ft", "train_em_trained"),
            (name, "full_ft"),
        )
        for name in PEFT_ROWS
    ]
    claims += [
        Claim(
            "PEFT pushes the model away from the knowledge target",
            "fraction of trained facts whose distance grew (training prompts), LoRA",
            1,
            metric_diff("lora", None, "pushed_away_fraction"),
            ("lora",),
        ),
        Claim(
            "PEFT pushes the model away from the knowledge target",
            "fraction of paraphrases whose distance grew, LoRA",
            1,
            metric_diff("lora", None, "paraphrase_pushed_away_fraction"),
            ("lora",),
        ),
        Claim(
            "... more than full fine-tuning does",
            "paraphrases pushed away, LoRA minus full fine-tuning",
            1,
            metric_diff("lora", "full_ft", "paraphrase_pushed_away_fraction"),
            ("lora", "full_ft"),
        ),
        Claim(
            "... more than full fine-tuning does",
            "neighbourhood answers pushed away, LoRA minus full fine-tuning",
            1,
            metric_diff("lora", "full_ft", "neighbourhood_pushed_away_fraction"),
            ("lora", "full_ft"),
        ),
        Claim(
            "Facts far from their target are harder to learn",
            "LoRA EM on the nearest quartile of base distance minus the farthest",
            1,
            lambda rows: (_bucket(rows["lora"], 0), _bucket(rows["lora"], -1)),
            ("lora",),
        ),
        Claim(
            "Proper nouns, times and places are hard for PEFT",
            "LoRA EM on names/years/places relations minus common-word relations",
            -1,
            hard_vs_easy,
            ("lora",),
        ),
        Claim(
            "Interference between facts suppresses learning",
            "LoRA EM of facts learned jointly minus the same facts learned alone",
            -1,
            lambda rows: tuple(reversed(_alone_minus_joint(rows["lora"]))),
            ("lora",),
        ),
        Claim(
            "Interference between facts suppresses learning",
            "interference curve, core facts: EM learned with the most others jointly minus learned alone",
            -1,
            lambda rows: (
                _curve_at_largest(rows["interference"], "em_core"),
                {s: float(r["alone"]["em_core"]) for s, r in rows["interference"].items()},
            ),
            ("interference",),
        ),
        Claim(
            "... and the expression of knowledge features",
            "interference curve, core facts: feature norm learned with the most others / alone, minus 1",
            -1,
            lambda rows: (
                {s: v - 1.0 for s, v in _curve_at_largest(rows["interference"], "feature_norm_ratio_core").items()},
                None,
            ),
            ("interference",),
        ),
        Claim(
            "Filtering out detrimental data helps",
            "EM on the facts the filter keeps, filtered LoRA minus plain LoRA",
            1,
            kept_facts("lora_filter"),
            ("lora", "lora_filter"),
        ),
        Claim(
            "Filtering out detrimental data helps",
            "EM on all facts (dropped ones count), filtered LoRA minus plain LoRA",
            1,
            metric_diff("lora_filter", "lora", "train_em"),
            ("lora", "lora_filter"),
        ),
        Claim(
            "Re-weighting by semantic distance helps",
            "EM on trained facts, re-weighted LoRA minus plain LoRA",
            1,
            metric_diff("lora_reweight", "lora", "train_em_trained"),
            ("lora", "lora_reweight"),
        ),
        Claim(
            "Re-weighting by semantic distance helps",
            "paraphrase EM, re-weighted LoRA minus plain LoRA",
            1,
            metric_diff("lora_reweight", "lora", "para_em"),
            ("lora", "lora_reweight"),
        ),
        Claim(
            "Filtering and re-weighting together help",
            "EM on the kept facts, both minus plain LoRA",
            1,
            kept_facts("lora_filter_reweight"),
            ("lora", "lora_filter", "lora_filter_reweight"),
        ),
    ]
    return claims


def evaluate_claims(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every claim whose rows exist in ``results_dir``: finding, measured, the two sides' means,
    the paired difference (mean, half-width, seeds) and the verdict."""
    rows = load_by_row(results_dir)
    out = []
    for claim in _claims():
        if not all(name in rows for name in claim.needs):
            continue
        a, b = claim.values(rows)
        if not a or (b is not None and not b):
            continue
        diff = paired_difference(a, b)
        sides = [mean_interval([a[s] for s in diff["seeds"]])]
        if b is not None:
            sides.append(mean_interval([b[s] for s in diff["seeds"]]))
        label = rows[claim.needs[0]][diff["seeds"][0]].get("label", claim.needs[0])
        out.append(
            {
                "finding": claim.finding,
                "measured": claim.measured.format(a=label),
                "direction": claim.direction,
                "sides": [{"mean": float(m), "half": None if h is None else float(h)} for m, h in sides],
                "difference": diff,
                "verdict": verdict(diff["mean"], diff["half"], claim.direction),
            }
        )
    return out


def _pm(mean: float, half: float | None, sign: bool = False) -> str:
    text = f"{mean:+.3f}" if sign else f"{mean:.3f}"
    return text + (f" ± {half:.3f}" if half is not None else "")


def claims_table(claims: list[dict[str, Any]], figure: str | None = None, data: str | None = None) -> str:
    """The markdown table of :func:`evaluate_claims` and a line on how verdicts are decided (and,
    given ``data``, what the rows were measured on)."""
    lines = [
        "| Paper's finding | Measured here | Values (a vs b) | Difference a - b | Expected | Verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in claims:
        values = " vs ".join(_pm(s["mean"], s["half"]) for s in c["sides"])
        d = c["difference"]
        expected = "> 0" if c["direction"] > 0 else "< 0"
        bold = f"**{c['verdict']}**" if c["verdict"] == HOLDS else c["verdict"]
        lines.append(
            f"| {c['finding']} | {c['measured']} | {values} | {_pm(d['mean'], d['half'], True)} | {expected} | {bold} |"
        )
    seeds = max((len(c["difference"]["seeds"]) for c in claims), default=0)
    text = "\n".join(lines) + (
        (f"\n\nData: {data}." if data else "")
        + f"\n\nMean ± 95% t-interval half-width over {seeds} seed(s), differences paired by seed. Verdict: "
        "*holds* = the interval of the difference excludes 0 on the side the paper predicts; *does not hold* = "
        "it excludes 0 on the other side (or is exactly 0 in every seed); *inside the noise* = it contains 0. "
        "Generated by `semantic-peft reproduce` (`semantic_peft.claims`) from the results JSON of every seed folder.\n"
    )
    if figure:
        text += f"\nAll methods at a glance (mean and 95% interval over seeds): [{figure}]({figure})\n"
    return text


def methods_figure(path: str | Path, aggregated: list[dict[str, Any]]) -> Path:
    """One PNG, a panel per metric of :data:`FIGURE_METRICS`, one bar per trained row with its
    95% interval over seeds (from :func:`semantic_peft.seeds.aggregate`'s records), the untrained
    model's value as a dashed line where it has the metric."""
    from shared_utils.atomic import headless_pyplot, save_figure

    plt = headless_pyplot()
    rows = [r for r in aggregated if "trained_facts" in r["metrics"]]
    base = next((r for r in aggregated if "trained_facts" not in r["metrics"]), None)
    fig, axes = plt.subplots(1, len(FIGURE_METRICS), figsize=(3.6 * len(FIGURE_METRICS), 4.2), squeeze=False)
    labels = [r["label"] for r in rows]
    for ax, (key, title) in zip(axes[0], FIGURE_METRICS):
        means = [r["metrics"].get(key, float("nan")) for r in rows]
        halves = [r["interval"].get(key) or 0.0 for r in rows]
        ax.bar(range(len(rows)), means, yerr=halves, capsize=3, color=[f"C{i}" for i in range(len(rows))])
        ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        if base is not None and key in base["metrics"]:
            ax.axhline(base["metrics"][key], ls="--", color="grey", lw=1, label="base model")
            ax.legend(fontsize=7, loc="upper right")
        ax.set_ylim(0, max(1.05, max((m + h for m, h in zip(means, halves) if m == m), default=1.0)))
    seeds = max(len(r["seeds"]) for r in rows) if rows else 0
    fig.suptitle(f"semantic-peft: every method, mean and 95% t-interval over up to {seeds} seeds (no bar: one seed)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def write_claims(
    results_dir: str | Path,
    aggregated: list[dict[str, Any]],
    readme: str | Path | None = None,
    section: str = "claims",
) -> list[dict[str, Any]]:
    """``claims.md``, ``claims.json`` and ``figures/methods.png`` in ``results_dir``; the README's
    ``section`` (default ``claims``) too when it has the markers. The note names the data the rows
    were measured on. Returns the evaluated claims."""
    from semantic_peft.seeds import data_label

    results_dir = Path(results_dir)
    claims = evaluate_claims(results_dir)
    figure = None
    if any("trained_facts" in r["metrics"] for r in aggregated):
        methods_figure(results_dir / "figures" / "methods.png", aggregated)
        figure = f"{results_dir.as_posix()}/figures/methods.png"
    atomic_write_json(results_dir / "claims.json", claims)
    data = data_label(aggregated)
    text = claims_table(claims, data=data)
    atomic_write_text(results_dir / "claims.md", text)
    if readme is not None and Path(readme).is_file() and f"<!-- {section}:start -->" in Path(readme).read_text():
        link = os.path.relpath(Path(figure).resolve(), Path(readme).resolve().parent) if figure else None
        replace_marked_section(readme, section, claims_table(claims, link and Path(link).as_posix(), data))
    return claims
