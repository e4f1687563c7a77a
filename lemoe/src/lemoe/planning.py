"""Editing order planning (paper, "clustering-based editing order planning").

The edit requests are embedded (default: the embedded all-MiniLM-L6-v2 sentence encoder; option:
the edited model's own mean input embedding), clustered with K-means (k = number of batches),
and batches are cut from the cluster-sorted order so that each batch holds semantically close
edits. ``random`` shuffles with the seed; ``given`` keeps the data order.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from lemoe.data import EditRequest


def kmeans(x: torch.Tensor, k: int, iters: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """K-means with k-means++ initialisation, deterministic under ``seed``: returns (labels, centroids)."""
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k={k} must be between 1 and the number of points ({x.shape[0]})")
    g = torch.Generator().manual_seed(seed)
    x = x.float()
    centroids = x[torch.randint(x.shape[0], (1,), generator=g)]
    while centroids.shape[0] < k:
        d2 = torch.cdist(x, centroids).min(1).values.pow(2)
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / len(d2))
        centroids = torch.cat([centroids, x[torch.multinomial(probs, 1, generator=g)]])
    labels = torch.cdist(x, centroids).argmin(1)
    for _ in range(iters):
        for j in range(k):
            members = x[labels == j]
            if len(members):
                centroids[j] = members.mean(0)
        new = torch.cdist(x, centroids).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels, centroids


@torch.no_grad()
def embed_requests(
    requests: list[EditRequest], embedder: str = "minilm-l6", model=None, tokenizer=None
) -> torch.Tensor:
    """One L2-normalised vector per request (text = prompt + target)."""
    texts = [f"{r.prompt} {r.target}" for r in requests]
    if embedder == "model":
        if model is None or tokenizer is None:
            raise ValueError("plan.embedder='model' needs the edited model and its tokenizer")
        table = model.get_input_embeddings().weight
        vecs = [
            table[torch.tensor(tokenizer(t)["input_ids"], device=table.device)].float().mean(0).cpu() for t in texts
        ]
        return F.normalize(torch.stack(vecs), dim=-1)
    from shared_utils.models import load_encoder

    encoder, enc_tok = load_encoder(embedder)
    encoder.eval()
    batch = enc_tok(texts, padding=True, truncation=True, return_tensors="pt")
    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def cluster_order(embeddings: torch.Tensor, batch_size: int, iters: int = 50, seed: int = 0) -> list[int]:
    """Indices sorted so that consecutive ``batch_size`` chunks come from the same K-means cluster.

    Clusters (k = number of batches) are visited from the largest; inside a cluster, points are
    sorted by distance to its centroid. Uneven clusters spill into the next batch.
    """
    k = max(1, math.ceil(embeddings.shape[0] / batch_size))
    labels, centroids = kmeans(embeddings, k, iters, seed)
    order: list[int] = []
    sizes = torch.bincount(labels, minlength=k)
    for j in sorted(range(k), key=lambda j: (-int(sizes[j]), j)):
        members = torch.nonzero(labels == j).flatten()
        dist = (embeddings[members].float() - centroids[j]).norm(dim=-1)
        order.extend(members[dist.argsort(stable=True)].tolist())
    return order


def plan_batches(
    requests: list[EditRequest],
    batch_size: int,
    order: str = "cluster",
    seed: int = 0,
    embeddings: torch.Tensor | None = None,
    iters: int = 50,
) -> list[list[EditRequest]]:
    """Split requests into batches in the planned order ('cluster' needs ``embeddings``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if order == "given":
        idx = list(range(len(requests)))
    elif order == "random":
        idx = torch.randperm(len(requests), generator=torch.Generator().manual_seed(seed)).tolist()
    elif order == "cluster":
        if embeddings is None:
            raise ValueError("plan.order='cluster' needs embeddings of the requests")
        idx = cluster_order(embeddings, batch_size, iters, seed)
    else:
        raise ValueError(f"plan.order must be 'cluster', 'random' or 'given', got {order!r}")
    ordered = [requests[i] for i in idx]
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
