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


def propagate(adj: torch.Tensor, e: torch.Tensor, n_layers: int) -> torch.Tensor:
    """LightGCN propagation: mean of E^(0..K) with E^(k+1) = A_hat E^(k)."""
    layers = [e]
    for _ in range(n_layers):
        e = torch.sparse.mm(adj, e)
        layers.append(e)
    return torch.stack(layers).mean(0)
