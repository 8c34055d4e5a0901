"""The user-item graph shared by LightGCN-style models (LightGCN, AlphaRec, ...)."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .data.split import Split


def normalized_adjacency(split: Split) -> torch.Tensor:
    """A_hat = D^{-1/2} A D^{-1/2} of the bipartite train graph (users first, then items), sparse CSR."""
    r = split.matrix("train")
    a = sp.bmat([[None, r], [r.T, None]], format="csr")
    deg = np.asarray(a.sum(1)).ravel()
    d = np.power(deg, -0.5, where=deg > 0, out=np.zeros_like(deg))
    a = (sp.diags(d) @ a @ sp.diags(d)).tocsr()
    a.sort_indices()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(a.indptr.astype(np.int64)),
                                       torch.from_numpy(a.indices.astype(np.int64)),
                                       torch.from_numpy(a.data.astype(np.float32)), size=a.shape,
                                       check_invariants=True)


class _SymmetricSpMM(torch.autograd.Function):
    """y = A x for a symmetric sparse A. The gradient A^T g = A g reuses the forward kernel instead of
    autograd's generic sparse backward: same numbers, ~3x faster training on a CPU (LightGCN on ml-100k:
    0.75 -> 0.26 s/epoch)."""

    @staticmethod
    def forward(ctx, adj, x):
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad):
        return None, torch.sparse.mm(ctx.adj, grad)


def propagate(adj: torch.Tensor, e: torch.Tensor, n_layers: int) -> torch.Tensor:
    """LightGCN propagation: mean of E^(0..K) with E^(k+1) = A_hat E^(k) (A_hat symmetric)."""
    layers = [e]
    for _ in range(n_layers):
        e = _SymmetricSpMM.apply(adj, e)
        layers.append(e)
    return torch.stack(layers).mean(0)
