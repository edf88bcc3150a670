"""One Euclidean codebook with EMA updates, k-means initialisation and dead-code reset."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def sample_rows(samples: torch.Tensor, n: int) -> torch.Tensor:
    """n rows of `samples` [N, D], without replacement when there are enough."""
    if samples.shape[0] >= n:
        index = torch.randperm(samples.shape[0], device=samples.device)[:n]
    else:
        index = torch.randint(0, samples.shape[0], (n,), device=samples.device)
    return samples[index]


def kmeans(samples: torch.Tensor, n_clusters: int, n_iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on samples [N, D]. Returns (centroids [K, D], cluster sizes [K]).

    Distances are computed as ||x||^2 - 2 x.c + ||c||^2 with a matmul, so memory stays
    O(N * K) rather than the O(N * K * D) of broadcasting differences.
    """
    centroids = sample_rows(samples, n_clusters)
    sizes = torch.zeros(n_clusters, device=samples.device)
    for _ in range(n_iters):
        assignment = nearest(samples, centroids)
        sizes = torch.bincount(assignment, minlength=n_clusters).to(samples.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, samples)
        empty = sizes == 0
        # An empty cluster keeps its old centroid instead of collapsing to the origin.
        centroids = torch.where(empty[:, None], centroids, sums / sizes.clamp(min=1)[:, None])
    return centroids, sizes


def nearest(x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    """Index of the nearest row of `embed` [K, D] for each row of x [N, D] -> [N] int64.

    The expression (including the ||x||^2 term, which does not change the argmax) and its
    order of operations are those of the released models, so codes agree bit for bit.
    """
    embed_t = embed.t()
    dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed_t + embed_t.pow(2).sum(0, keepdim=True))
    return dist.max(dim=-1).indices


class EuclideanCodebook(nn.Module):
    """A codebook of `size` vectors of `dim` entries, learnt by exponential moving averages.

    Buffers (names as in the released checkpoints): `inited` (1 once k-means ran),
    `cluster_size` (EMA usage count per code), `embed` [size, dim], `embed_avg` (EMA sums).

    Args:
        dim: vector dimension.
        size: number of codes.
        decay: EMA decay.
        kmeans_iters: k-means iterations run on the first training batch.
        dead_code_threshold: codes whose EMA usage falls below this are re-drawn from the batch.
        epsilon: Laplace smoothing of the usage counts.
    """

    inited: torch.Tensor
    cluster_size: torch.Tensor
    embed: torch.Tensor
    embed_avg: torch.Tensor

    def __init__(self, dim: int, size: int, decay: float = 0.99, kmeans_iters: int = 50,
                 dead_code_threshold: float = 2.0, epsilon: float = 1e-5):
        super().__init__()
        self.size = size
        self.decay = decay
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.epsilon = epsilon
        self.register_buffer("inited", torch.zeros(1))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, dim] -> [N]
        return nearest(x, self.embed)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        # codes: [...] -> [..., dim]
        return F.embedding(codes, self.embed)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """k-means on x [N, dim]; the release's models start this way on their first batch."""
        centroids, sizes = kmeans(x.float(), self.size, self.kmeans_iters)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every process must start from the same codebook: take the first one's.
            torch.distributed.broadcast(centroids, src=0)
            torch.distributed.broadcast(sizes, src=0)
        self.embed.copy_(centroids)
        self.embed_avg.copy_(centroids)
        self.cluster_size.copy_(sizes)
        self.inited.fill_(1)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """One EMA step from the batch x [N, dim] and its codes [N] (training only)."""
        x = x.float()
        onehot = F.one_hot(codes, self.size).to(x.dtype)
        counts, sums = onehot.sum(0), onehot.t() @ x
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.size * self.epsilon) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        self._reset_dead_codes(x)

    def _reset_dead_codes(self, x: torch.Tensor) -> None:
        dead = self.cluster_size < self.dead_code_threshold
        if not dead.any():
            return
        replacement = sample_rows(x, self.size)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.broadcast(replacement, src=0)
        self.embed.copy_(torch.where(dead[:, None], replacement, self.embed))
        # Restart the EMA of a re-drawn code at its new position with a unit count.
        self.embed_avg.copy_(torch.where(dead[:, None], replacement, self.embed_avg))
        self.cluster_size.copy_(torch.where(dead, torch.ones_like(self.cluster_size), self.cluster_size))
