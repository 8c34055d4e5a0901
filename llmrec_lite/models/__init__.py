"""Recommenders behind one contract (see base.py). One readable file per model."""
from __future__ import annotations

from .alpharec import AlphaRec, AlphaRecLinear
from .base import Recommender
from .lightgcn import LightGCN
from .llmesr import LLMESR
from .mf import MF
from .pad import PAD, IDTextConcat
from .pop import Pop
from .sasrec import SASRec

# name: (class, split protocol, default training hyper-parameters)
MODELS = {
    "pop": (Pop, "random", {}),
    "mf": (MF, "random", {"lr": 1e-3, "batch_size": 2048, "epochs": 500, "patience": 50}),
    "lightgcn": (LightGCN, "random", {"lr": 1e-3, "batch_size": 2048, "epochs": 500, "patience": 50}),
    # paper models (AlphaRec: Adam 5e-4, batch 4096, tau 0.15, 256 negatives, as the official code)
    "alpharec": (AlphaRec, "random", {"lr": 5e-4, "batch_size": 4096, "epochs": 300, "patience": 30}),
    "alpharec-linear": (AlphaRecLinear, "random", {"lr": 5e-4, "batch_size": 4096, "epochs": 300, "patience": 30}),
    # LLM-ESR: SASRec backbone; BCE with one negative + 0.1 x MSE self-distillation, as the official code
    "llmesr": (LLMESR, "loo", {"lr": 1e-3, "batch_size": 128, "epochs": 200, "patience": 20,
                               "valid_metric": "ndcg@10"}),
    # PAD: three stages, each early-stopped on validation NDCG@10; BCE + MK-MMD as the official code
    "pad": (PAD, "loo", {"lr": 1e-3, "batch_size": 128, "epochs": 200, "patience": 20, "valid_metric": "ndcg@10"}),
    "id-text-concat": (IDTextConcat, "loo", {"lr": 1e-3, "batch_size": 128, "epochs": 200, "patience": 20,
                                             "valid_metric": "ndcg@10"}),
    "sasrec": (SASRec, "loo", {"lr": 1e-3, "batch_size": 128, "epochs": 200, "patience": 20,
                               "valid_metric": "ndcg@10"}),
}


def get_model(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {sorted(MODELS)}")
    return MODELS[name]


__all__ = ["MODELS", "PAD", "AlphaRec", "AlphaRecLinear", "IDTextConcat", "LLMESR", "LightGCN", "MF", "Pop", "Recommender",
           "SASRec", "get_model"]
