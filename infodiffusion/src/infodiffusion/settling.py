"""The keyinfo-first check: at which reverse step each target word's token settles, by its information.

InfoDiffusion (Wang, Li & Li, Findings of EMNLP 2023) claims that noising words by their
information content makes the reverse process generate "keyinfo-first": key (high-information)
words are generated first, where DiffuSeq generates easy (low-information) words first. This
module measures that on trained runs:

* **trace**: the run's reverse process on the first N evaluation sources, one candidate per
  source seeded as ``sampling.candidate_seed`` does, keeping after every reverse step the token
  the sampler reads off the current x̂₀ at each target position (the argmax of the tied
  rounding head, or the nearest embedding under clamping: ``TextDiffusion.sample(record=True)``);
* **settling**: the settling step of a position is the earliest of the K recorded steps from
  which its token no longer changes until the end, given as the fraction k / (K − 1) of the
  reverse process elapsed: 0 when the first x̂₀ (predicted from pure noise x_T) already holds
  the final token, 1 when the token still changed at the last step, so runs with different T
  or step counts compare;
* **information**: a position is scored with e(w) of its *reference* word
  (``InformationScores.normalised``, the sentence-normalised score the information schedule
  noises by), so every run is scored on the same positions with the same scores whatever it
  generated; positions whose reference is a special token ([SEP], [PAD], [UNK]) are left out;
* **bins**: quantile bins of e over the scored positions; per bin the mean settling fraction
  (over positions) with a 95% percentile bootstrap interval over sources (a resample draws
  sources with replacement and keeps all their positions). Keyinfo-first holds for a run when
  the lowest bin's mean minus the highest bin's is above 0 with its interval; below 0 with its
  interval is easy-first.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from infodiffusion.config import InfoDiffusionConfig
from shared_utils.errors import ConfigError
from shared_utils.intervals import RESAMPLES, SEED, resample_indices

EXAMPLES = 3


def settling_fraction(trajectory: torch.Tensor) -> torch.Tensor:
    """Settling step of each position of a token trajectory [K, ...], as a fraction of the K steps.

    The earliest step index k with ``trajectory[k:] == trajectory[-1]``, divided by K − 1
    (a position that never changes settles at 0; with K = 1 everything settles at 0).
    """
    steps = trajectory.shape[0]
    changed = trajectory != trajectory[-1]
    index = torch.arange(steps).view(-1, *([1] * (trajectory.dim() - 1)))
    settled_at = torch.where(changed, index, -1).amax(0) + 1
    return settled_at.float() / max(steps - 1, 1)


def quantile_bins(scores: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges (the 0, 1/n, ..., 1 quantiles) and the bin 0..n−1 of each score (a tie with an inner
    edge goes to the upper bin); a bin left empty (too few distinct scores) is refused."""
    edges = np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], scores, side="right")
    empty = sorted(set(range(n_bins)) - set(bins.tolist()))
    if empty:
        raise ConfigError(f"--bins {n_bins}: bin(s) {empty} hold no position (too few distinct scores); use fewer")
    return edges, bins


def bootstrap_bins(
    source: np.ndarray,
    values: np.ndarray,
    bins: np.ndarray,
    n_bins: int,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict:
    """Mean of ``values`` per bin over positions and the lowest minus the highest bin's mean, each
    with a 95% percentile bootstrap interval that resamples sources (``source`` ids) with all
    their positions (Efron & Tibshirani 1993, ch. 13)."""
    _, rows = np.unique(source, return_inverse=True)
    sums = np.zeros((rows.max() + 1, n_bins))
    counts = np.zeros_like(sums)
    np.add.at(sums, (rows, bins), values)
    np.add.at(counts, (rows, bins), 1.0)
    draw = resample_indices(len(sums), resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample may miss a bin: NaN, skipped
        means = sums[draw].sum(1) / counts[draw].sum(1)
    mean = sums.sum(0) / counts.sum(0)
    low, high = np.nanpercentile(means, [2.5, 97.5], axis=0)
    diff_low, diff_high = np.nanpercentile(means[:, 0] - means[:, -1], [2.5, 97.5])
    return {
        "mean": mean.tolist(),
        "ci95": np.stack([low, high], 1).tolist(),
        "positions": counts.sum(0).astype(int).tolist(),
        "difference": float(mean[0] - mean[-1]),
        "difference_ci95": [float(diff_low), float(diff_high)],
    }


def verdict(interval: list[float]) -> str:
    """``keyinfo-first`` (low − high above 0), ``easy-first`` (below 0) or ``not separated``."""
    if interval[0] > 0:
        return "keyinfo-first"
    if interval[1] < 0:
        return "easy-first"
    return "not separated"


def run_label(cfg: InfoDiffusionConfig) -> str:
    """The reproduction row's label for the run's schedule and self-conditioning, else both named."""
    from infodiffusion.reproduce import ROWS

    settings = {"diffusion.schedule": cfg.diffusion.schedule, "model.self_conditioning": cfg.model.self_conditioning}
    for label, overrides in ROWS.values():
        if overrides == settings:
            return label
    return cfg.diffusion.schedule + (" + self-cond." if cfg.model.self_conditioning else "")


def trace_run(cfg: InfoDiffusionConfig, run_dir: str | Path, n_sources: int) -> dict:
    """Reverse process of ``run_dir`` on the first ``n_sources`` sources of ``cfg.data.eval_split``:
    per scored position (reference word not a special token) its source, settling fraction,
    e of the reference word and whether the final token is the reference; plus a few decoded
    examples and the number of recorded steps."""
    from infodiffusion.data import decode, load_pairs
    from infodiffusion.evaluate import load_model
    from infodiffusion.run import load_artifacts
    from infodiffusion.sampling import generate

    artifacts = load_artifacts(cfg, run_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(run_dir, cfg.sample.use_ema).to(device)
    pairs = load_pairs(cfg.data.dataset, cfg.data.eval_split, n_sources)
    ref_ids, mask = artifacts.encode(pairs, cfg.data.seq_len)
    out = generate(model, artifacts.diffusion, ref_ids, mask, cfg.sample, cfg.seed, 1, record=True, progress=False)
    trajectory = torch.stack([r["trajectory"] for r in out], 1)  # [K, sources, L]
    output = torch.stack([r["ids"] for r in out])
    settle = settling_fraction(trajectory)
    final = trajectory[-1]
    scored = mask.bool() & ~artifacts.info.is_special[ref_ids]
    score = artifacts.info.normalised(ref_ids, mask)
    source = torch.arange(len(pairs)).unsqueeze(1).expand_as(ref_ids)
    tokens = artifacts.tokenizer.convert_ids_to_tokens
    hyps = decode(output[:EXAMPLES], mask[:EXAMPLES], artifacts.vocab, artifacts.tokenizer)
    examples = []
    for i, hyp in enumerate(hyps):
        keep = scored[i]
        examples.append(
            {
                "src": pairs[i]["src"],
                "ref": pairs[i]["trg"],
                "hyp": hyp,
                "words": [
                    {"ref": r, "final": f, "e": round(e, 3), "settles_at": round(s, 3)}
                    for r, f, e, s in zip(
                        tokens(artifacts.vocab.to_full(ref_ids[i][keep].tolist())),
                        tokens(artifacts.vocab.to_full(final[i][keep].tolist())),
                        score[i][keep].tolist(),
                        settle[i][keep].tolist(),
                    )
                ],
            }
        )
    return {
        "source": source[scored].numpy(),
        "settle": settle[scored].numpy(),
        "score": score[scored].numpy(),
        "correct": (final == ref_ids)[scored].numpy().astype(float),
        "final_is_output": float((final == output)[scored].float().mean()),
        "recorded_steps": trajectory.shape[0],
        "n_sources": len(pairs),
        "examples": examples,
    }


def summarise_run(cfg: InfoDiffusionConfig, run_dir: str | Path, n_sources: int, n_bins: int) -> dict:
    """One run's entry of ``settling.json``: per information bin the mean settling fraction (95%
    bootstrap interval over sources) and the share of final tokens equal to the reference, and
    the lowest minus the highest bin's mean with its interval and verdict."""
    from shared_utils.config import config_to_dict

    trace = trace_run(cfg, run_dir, n_sources)
    edges, bins = quantile_bins(trace["score"], n_bins)
    stats = bootstrap_bins(trace["source"], trace["settle"], bins, n_bins)
    correct = np.bincount(bins, weights=trace["correct"], minlength=n_bins) / np.bincount(bins, minlength=n_bins)
    return {
        "run": str(run_dir),
        "label": run_label(cfg),
        "n_sources": trace["n_sources"],
        "sampler": f"{cfg.sample.method}, {trace['recorded_steps']} recorded steps (T = {cfg.diffusion.steps})",
        "bins": [
            {
                "bin": k + 1,
                "score_range": [float(edges[k]), float(edges[k + 1])],
                "positions": stats["positions"][k],
                "mean_settling": stats["mean"][k],
                "ci95": stats["ci95"][k],
                "final_is_reference": float(correct[k]),
            }
            for k in range(n_bins)
        ],
        "low_minus_high": {"mean": stats["difference"], "ci95": stats["difference_ci95"]},
        "verdict": verdict(stats["difference_ci95"]),
        "final_is_reference": float(trace["correct"].mean()),
        "final_is_output": trace["final_is_output"],
        "examples": trace["examples"],
        "config": config_to_dict(cfg),
    }


def _interval_cell(mean: float, interval: list[float]) -> str:
    return f"{mean:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def render_table(entries: list[dict]) -> str:
    """Markdown: per run the mean settling fraction [95% interval] per bin, low − high, the verdict."""
    from shared_utils.results import render_markdown_table

    n_bins = len(entries[0]["bins"])
    columns = {"label": "run", "n_sources": "sources", "sampler": "sampler"}
    columns |= {f"bin{k + 1}": f"bin {k + 1}/{n_bins} of e" for k in range(n_bins)}
    columns |= {"diff": "low − high", "final_is_reference": "final = ref", "verdict": "verdict"}
    rows = [
        {
            **{k: e[k] for k in ("label", "n_sources", "sampler", "final_is_reference", "verdict")},
            **{f"bin{b['bin']}": _interval_cell(b["mean_settling"], b["ci95"]) for b in e["bins"]},
            "diff": _interval_cell(e["low_minus_high"]["mean"], e["low_minus_high"]["ci95"]),
        }
        for e in entries
    ]
    return render_markdown_table(rows, columns)


def plot_settling(entries: list[dict], path: Path) -> None:
    """Mean settling fraction against the information bin, one line per run, 95% error bars."""
    from shared_utils.atomic import headless_pyplot, save_figure

    plt = headless_pyplot()

    n_bins = len(entries[0]["bins"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for j, e in enumerate(entries):
        x = np.arange(1, n_bins + 1) + 0.06 * (j - (len(entries) - 1) / 2)  # side by side, bars apart
        mean = np.array([b["mean_settling"] for b in e["bins"]])
        ci = np.array([b["ci95"] for b in e["bins"]])
        diff = e["low_minus_high"]
        ax.errorbar(
            x,
            mean,
            yerr=[mean - ci[:, 0], ci[:, 1] - mean],
            marker="o",
            capsize=3,
            label=f"{e['label']} (low − high {_interval_cell(diff['mean'], diff['ci95'])})",
        )
    labels = [f"{k}/{n_bins}" for k in range(1, n_bins + 1)]
    labels[0], labels[-1] = f"{labels[0]}\nlow e", f"{labels[-1]}\nhigh e"
    ax.set_xticks(np.arange(1, n_bins + 1))
    ax.set_xticklabels(labels)
    ax.set_xlabel("information bin of the reference word (quantiles of e(w))")
    ax.set_ylabel("settling step (fraction of the reverse process)")
    ax.set_title(f"Settling step by information ({entries[0]['n_sources']} sources, 95% bootstrap CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def settle(
    runs: list[tuple[str | Path, InfoDiffusionConfig]],
    output: Path,
    n_sources: int = 40,
    n_bins: int = 4,
    readme: Path | None = None,
) -> str:
    """Trace every (run folder, config) and write ``settling.json`` (with provenance),
    ``settling.png`` and ``settling.md`` into ``output`` (and the table into ``readme``'s
    ``keyinfo-first`` section when given); returns the table."""
    from shared_utils.results import atomic_write_text, replace_marked_section, write_results

    if n_sources < 1 or n_bins < 2:
        raise ConfigError(f"--sources must be >= 1 and --bins >= 2, got {n_sources} and {n_bins}")
    start = time.time()
    entries = [summarise_run(cfg, run_dir, n_sources, n_bins) for run_dir, cfg in runs]
    output.mkdir(parents=True, exist_ok=True)
    settings = {
        "sources": n_sources,
        "bins": n_bins,
        "score": "e(w) of the reference word (InformationScores.normalised); special-token positions left out",
        "settling": "earliest recorded step k after which the token no longer changes, as k / (K - 1)",
        "bootstrap": {"resamples": RESAMPLES, "seed": SEED, "unit": "source", "interval": "percentile 95%"},
    }
    write_results(
        output / "settling.json", {"runs": entries}, wall_time_s=time.time() - start, extra={"settings": settings}
    )
    table = render_table(entries)
    ranges = ", ".join(f"[{b['score_range'][0]:.3f}, {b['score_range'][1]:.3f}]" for b in entries[0]["bins"])
    note = (
        f"\nBins of e (first run's quantiles): {ranges}.\n"
        f"\nMean settling step (fraction of the reverse process elapsed: 0 = the first x̂₀, predicted from "
        f"pure noise, already holds the final token; 1 = it changed at the last step) of the target words, "
        f"by {n_bins} quantile bins of the information score e(w) of the reference word, [95% bootstrap "
        f"interval over sources]. `low − high` > 0: high-information words settle first (keyinfo-first). "
        f"`final = ref`: share of final tokens equal to the reference word. From `settling.json`.\n"
    )
    atomic_write_text(output / "settling.md", table + note)
    plot_settling(entries, output / "settling.png")
    if readme is not None:
        replace_marked_section(readme, "keyinfo-first", table + note)
    return table
