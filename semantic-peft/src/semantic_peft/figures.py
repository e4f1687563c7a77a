"""Matplotlib figures: distance histograms before/after, drift trajectories, PCA of knowledge features."""

from __future__ import annotations

from pathlib import Path

import torch

from shared_utils.atomic import headless_pyplot, save_figure


def pca_2d(features: torch.Tensor) -> torch.Tensor:
    """Project rows onto their first two principal components (centred SVD), (N, 2)."""
    centred = features.float() - features.float().mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T


def run_figure(
    path: str | Path,
    title: str,
    base: torch.Tensor,
    final: torch.Tensor,
    trajectory: torch.Tensor | None,
    features: torch.Tensor | None,
    groups: list[str | None] | None = None,
    max_lines: int = 60,
) -> Path:
    """One PNG with three panels: histograms of base vs final distance, per-fact drift
    trajectories (pushed-away facts in red), and the 2-D PCA of knowledge features."""
    plt = headless_pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    bins = torch.linspace(0, float(max(base.max(), final.max())) * 1.05 + 1e-6, 30).tolist()
    axes[0].hist(base.tolist(), bins=bins, alpha=0.6, label="before (base)")
    axes[0].hist(final.tolist(), bins=bins, alpha=0.6, label="after training")
    axes[0].set(xlabel="target semantic distance d", ylabel="facts", title="distance before / after")
    axes[0].legend()
    if trajectory is not None and trajectory.shape[0] > 1:
        pushed = trajectory[-1] > trajectory[0]
        step = max(1, trajectory.shape[1] // max_lines)
        for j in range(0, trajectory.shape[1], step):
            axes[1].plot(trajectory[:, j].tolist(), color="tab:red" if pushed[j] else "tab:blue", alpha=0.35, lw=0.8)
        axes[1].plot(trajectory.mean(1).tolist(), color="black", lw=2, label="mean")
        axes[1].set(
            xlabel="epoch (0 = base)",
            ylabel="d",
            title=f"drift ({int(pushed.sum())} of {len(pushed)} pushed away, red)",
        )
        axes[1].legend()
    else:
        axes[1].set_axis_off()
    if features is not None and len(features) >= 3:
        points = pca_2d(features)
        labels = groups or [None] * len(points)
        for group in sorted({g or "" for g in labels}):
            idx = [i for i, g in enumerate(labels) if (g or "") == group]
            axes[2].scatter(points[idx, 0].tolist(), points[idx, 1].tolist(), s=10, label=group or None)
        axes[2].set(xlabel="PC1", ylabel="PC2", title="knowledge features (h_on - h_off), PCA")
        if groups:
            axes[2].legend(fontsize=7, markerscale=1.5)
    else:
        axes[2].set_axis_off()
    fig.suptitle(title)
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def weight_figure(path: str | Path, title: str, stats: list[dict[str, float]]) -> Path:
    """Re-weighting statistics per optimiser step: effective sample size as a fraction of the
    batch (left) and the largest / smallest weight (right)."""
    plt = headless_pyplot()

    steps = list(range(1, len(stats) + 1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(steps, [s["ess_fraction"] for s in stats])
    axes[0].set(xlabel="step", ylabel="ESS / batch", ylim=(0, 1.05), title="effective sample size")
    axes[1].plot(steps, [s["max_weight"] for s in stats], label="max")
    axes[1].plot(steps, [s["min_weight"] for s in stats], label="min")
    axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[1].set(xlabel="step", ylabel="weight", title="extreme weights (mean 1)")
    axes[1].legend()
    fig.suptitle(f"{title}: re-weighting statistics")
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


DRIFT_SETS = {
    "train": "training prompts",
    "paraphrase": "paraphrases",
    "neighbourhood": "neighbourhood answers",
    "unrelated": "unrelated answers",
}


def drift_figure(path: str | Path, title: str, runs: dict[str, dict[str, dict]]) -> Path:
    """Distance drift per probe set, one line per run: the mean target distance (top) and the
    fraction pushed away from the base (bottom), per epoch (0 = base). ``runs`` maps a label to
    its ``details["drift"]`` (:func:`semantic_peft.semantic.drift_curves` per set)."""
    plt = headless_pyplot()

    sets = [s for s in DRIFT_SETS if any(s in drift for drift in runs.values())]
    fig, axes = plt.subplots(2, len(sets), figsize=(4 * len(sets), 6.4), squeeze=False)
    for column, name in enumerate(sets):
        for label, drift in runs.items():
            if name in drift:
                axes[0, column].plot(drift[name]["mean"], marker=".", label=label)
                axes[1, column].plot(drift[name]["pushed_away"], marker=".", label=label)
        n = next(drift[name]["n"] for drift in runs.values() if name in drift)
        axes[0, column].set(title=f"{DRIFT_SETS[name]} (n={n})", ylabel="mean distance d")
        axes[1, column].set(xlabel="epoch (0 = base)", ylabel="fraction pushed away", ylim=(-0.02, 1.02))
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{title}: semantic-distance drift")
    return save_figure(fig, path, dpi=110, bbox_inches="tight")
