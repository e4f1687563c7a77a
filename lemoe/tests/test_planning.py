import pytest
import torch

from lemoe.data import EditRequest
from lemoe.planning import cluster_order, kmeans, plan_batches


def _blobs():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(6, 2, generator=g) for c in centres])
    return points[torch.randperm(18, generator=g)], centres


def test_kmeans_separates_blobs_and_is_deterministic():
    x, _ = _blobs()
    labels, centroids = kmeans(x, 3, seed=5)
    labels2, centroids2 = kmeans(x, 3, seed=5)
    assert torch.equal(labels, labels2) and torch.equal(centroids, centroids2)
    truth = torch.cdist(x, torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])).argmin(1)
    # same partition as the true blobs (up to relabelling)
    for j in range(3):
        assert len(set(labels[truth == j].tolist())) == 1
    assert len(set(labels.tolist())) == 3


def test_cluster_batches_hold_one_blob_each():
    x, centres = _blobs()
    requests = [EditRequest(f"p{i}", "t") for i in range(18)]
    batches = plan_batches(requests, 6, "cluster", seed=0, embeddings=x)
    truth = torch.cdist(x, centres).argmin(1)
    for batch in batches:
        assert len({truth[int(r.prompt[1:])].item() for r in batch}) == 1
    assert sorted(cluster_order(x, 6)) == list(range(18))


def test_random_and_given_orders_and_errors():
    requests = [EditRequest(f"p{i}", "t") for i in range(5)]
    assert [r.prompt for b in plan_batches(requests, 2, "given") for r in b] == [f"p{i}" for i in range(5)]
    r1 = plan_batches(requests, 2, "random", seed=3)
    assert r1 == plan_batches(requests, 2, "random", seed=3) and [len(b) for b in r1] == [2, 2, 1]
    with pytest.raises(ValueError, match=r"plan\.order"):
        plan_batches(requests, 2, "alphabetical")
    with pytest.raises(ValueError, match="needs embeddings"):
        plan_batches(requests, 2, "cluster")
