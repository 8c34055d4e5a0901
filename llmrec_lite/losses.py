"""Losses shared by the paper models."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, tau: float = 0.15,
             neg_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine InfoNCE (AlphaRec eq. 5): for each user u, positive i and negatives j_1..j_N,

        L = -log  exp(cos(u, i)/tau) / ( exp(cos(u, i)/tau) + sum_n exp(cos(u, j_n)/tau) )

    user, pos: [B, d]; neg: [B, N, d] (per-row negatives) or [N, d] (negatives shared by the batch,
    much cheaper on a CPU). ``neg_mask`` [B, N] (True = drop): negatives that are not negatives for that
    row (the positive itself, or another of the user's items) leave the denominator. Returns the mean over
    the batch.
    """
    u = F.normalize(user, dim=-1)
    s_pos = (u * F.normalize(pos, dim=-1)).sum(-1, keepdim=True)  # [B, 1]
    neg = F.normalize(neg, dim=-1)
    s_neg = u @ neg.T if neg.dim() == 2 else torch.einsum("bd,bnd->bn", u, neg)  # [B, N]
    if neg_mask is not None:
        s_neg = s_neg.masked_fill(neg_mask, -torch.inf)
    logits = torch.cat([s_pos, s_neg], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def in_batch_info_nce(a: torch.Tensor, b: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """In-batch contrastive loss pulling each row of ``a`` toward the same row of ``b`` (Molar's alignment of
    content and ID user embeddings): the other rows of ``b`` are the negatives,

        L = mean_k -log  exp(cos(a_k, b_k)/tau) / sum_j exp(cos(a_k, b_j)/tau)

    a, b: [B, d]. Only ``a``'s side is trained when ``b`` comes from a frozen model."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / tau
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Molar's post-alignment loss (its Eq. 4): the in-batch InfoNCE from ``a`` to ``b`` plus the one from ``b`` to
    ``a`` (the paper adds the two log terms; no 1/2),

        L = InfoNCE_tau(a -> b) + InfoNCE_tau(b -> a),

    so each row is pulled toward its partner against the other side's rows *and* each partner is told apart from
    the other rows of ``a``. Swapping ``a`` and ``b`` gives the same value. With ``b`` from a frozen model, both
    directions still train ``a`` (in b -> a the rows of ``a`` are the candidates)."""
    return in_batch_info_nce(a, b, tau) + in_batch_info_nce(b, a, tau)


def sampled_bce(pos_logit: torch.Tensor, neg_logit: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with sampled negatives (SASRec's original loss, LLM-ESR's and PAD's), at the
    official code's scale: the mean over positives plus the mean over negatives,

        L = mean_t -log sigmoid(s_t+)  +  mean_t -log(1 - sigmoid(s_t-))

    (not the mean of all of them together, which halves the loss and so doubles every other weight
    added to it, e.g. LLM-ESR's alpha or PAD's MMD weight). Pass the logits of the non-padding positions."""
    return (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
            + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))


# ------------------------------------------------------------------------------------------- MMD
PAD_BANDWIDTHS = (0.125, 0.25, 0.5, 1.0, 2.0)  # PAD / DAN: sigma^2 = m x mean squared distance, m = 2^-3 .. 2^1


def mk_mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=PAD_BANDWIDTHS) -> torch.Tensor:
    """Multi-kernel maximum mean discrepancy (DAN; PAD's alignment loss), the unbiased estimate of

        MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y),   k = (1/m) sum_k exp(-||a - b||^2 / (2 sigma_k^2))

    with sigma_k^2 = bandwidths[k] x the mean squared distance between all pairs of the pooled batch
    (detached: the bandwidths follow the data but are not optimised). x: [n, d], y: [m, d]. Gaussian
    kernels are characteristic: MMD = 0 only when the two distributions are equal, all moments included.
    The official code sums the five kernels (tllib); the mean used here is the same loss / 5, so its
    weight 0.2 corresponds to 1.0 here.
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mk_mmd needs two [n, d] samples of the same width, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("mk_mmd needs at least two rows in each sample")
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    scale = d2.detach().sum() / (len(z) * (len(z) - 1))  # mean over distinct pairs
    k = sum(torch.exp(-d2 / (2 * b * scale)) for b in bandwidths) / len(bandwidths)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * kxy.mean())


def single_kernel_mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 1.0) -> torch.Tensor:
    """``mk_mmd`` with one Gaussian kernel (sigma^2 = bandwidth x mean squared distance): the comparison PAD
    makes against a single characteristic kernel whose one bandwidth may miss the scale that differs."""
    return mk_mmd(x, y, bandwidths=(bandwidth,))


def linear_mmd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MMD with the linear kernel k(a, b) = a·b, unbiased like ``mk_mmd``: an estimate of the squared
    distance of the means ||E x - E y||^2. A non-characteristic kernel that sees only the first moment
    (two distributions with equal means but different spreads look identical to it)."""
    n, m = len(x), len(y)
    sx, sy = x.sum(0), y.sum(0)
    xx = (sx @ sx - (x * x).sum()) / (n * (n - 1))
    yy = (sy @ sy - (y * y).sum()) / (m * (m - 1))
    return xx + yy - 2 * (sx / n) @ (sy / m)
