"""Losses shared by the paper models."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, tau: float = 0.15) -> torch.Tensor:
    """Cosine InfoNCE (AlphaRec eq. 5): for each user u, positive i and negatives j_1..j_N,

        L = -log  exp(cos(u, i)/tau) / ( exp(cos(u, i)/tau) + sum_n exp(cos(u, j_n)/tau) )

    user, pos: [B, d]; neg: [B, N, d] (per-row negatives) or [N, d] (negatives shared by the batch,
    much cheaper on a CPU). Returns the mean over the batch.
    """
    u = F.normalize(user, dim=-1)
    s_pos = (u * F.normalize(pos, dim=-1)).sum(-1, keepdim=True)  # [B, 1]
    neg = F.normalize(neg, dim=-1)
    s_neg = u @ neg.T if neg.dim() == 2 else torch.einsum("bd,bnd->bn", u, neg)  # [B, N]
    logits = torch.cat([s_pos, s_neg], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
