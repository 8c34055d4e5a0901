"""Recommenders behind one contract (see base.py), one readable file per model, and the registry that the
CLI, the benchmarks and the tests read: each model's split protocol, task, whether it reads item text, and
its trainer defaults. A new model is one ``register(...)`` line."""
from __future__ import annotations

from dataclasses import dataclass, field

from .alpharec import AlphaRec, AlphaRecLinear
from .bahe import BAHE
from .base import CTRRecommender, Recommender
from .din import DIN
from .lightgcn import LightGCN
from .llmcf import LLMCFDIN, LLMCFSASRec
from .llmesr import LLMESR
from .mf import MF
from .molar import Molar
from .pad import PAD, IDTextConcat
from .pop import Pop
from .sasrec import SASRec


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type
    protocol: str  # the split it trains on: "random" | "loo" | "ctr"
    task: str = "ranking"  # "ranking" (full-ranking Recall/NDCG) | "ctr" (AUC / LogLoss)
    reads_text: bool = False  # builds item vectors with a language model (takes encoder=, item_z=)
    defaults: dict = field(default_factory=dict)  # trainer settings (epochs, lr, batch_size, patience, ...)
    paper: str = ""


MODELS: dict[str, ModelSpec] = {}


def register(name: str, cls: type, protocol: str, task: str = "ranking", reads_text: bool = False,
             paper: str = "", **defaults) -> ModelSpec:
    if protocol not in ("random", "loo", "ctr") or task not in ("ranking", "ctr") or (task == "ctr") != (protocol == "ctr"):
        raise ValueError(f"{name}: bad protocol/task {protocol!r}/{task!r}")
    MODELS[name] = spec = ModelSpec(name, cls, protocol, task, reads_text, defaults, paper)
    return spec


SEQ = {"lr": 1e-3, "batch_size": 128, "epochs": 200, "patience": 20, "valid_metric": "ndcg@10"}
register("pop", Pop, "random")
register("mf", MF, "random", lr=1e-3, batch_size=2048, epochs=500, patience=50)
register("lightgcn", LightGCN, "random", lr=1e-3, batch_size=2048, epochs=500, patience=50)
register("sasrec", SASRec, "loo", **SEQ)
# AlphaRec: Adam 5e-4, batch 4096, tau 0.15, 256 negatives, as the official code
register("alpharec", AlphaRec, "random", reads_text=True, paper="AlphaRec", lr=5e-4, batch_size=4096, epochs=300,
         patience=30)
register("alpharec-linear", AlphaRecLinear, "random", reads_text=True, paper="AlphaRec", lr=5e-4, batch_size=4096,
         epochs=300, patience=30)
# LLM-ESR: SASRec backbone; BCE with one negative + 0.1 x MSE self-distillation, as the official code
register("llmesr", LLMESR, "loo", reads_text=True, paper="LLM-ESR", **SEQ)
# PAD: three stages, each early-stopped on validation NDCG@10; BCE + MK-MMD as the official code
register("pad", PAD, "loo", reads_text=True, paper="PAD", **SEQ)
register("id-text-concat", IDTextConcat, "loo", reads_text=True, paper="PAD", **SEQ)
# Molar: stage "id" is the project's SASRec (BCE) with its settings; stage "content" trains DUEG on them too
# at most 400 epochs (the ml-100k teacher stopped on a 200 cap); every row of its comparison shares them (seeds.py)
register("molar", Molar, "loo", reads_text=True, paper="Molar", **(SEQ | {"epochs": 400}))
# DIN: RecBole's trainer defaults for context-aware models (Adam 1e-3, batch 2048), early stop on valid AUC
register("din", DIN, "ctr", task="ctr", lr=1e-3, batch_size=2048, epochs=100, patience=5, valid_metric="auc")
# LLM-CF: the project's SASRec and DIN with the in-context CoT module, each with its backbone's trainer settings
register("llmcf-sasrec", LLMCFSASRec, "loo", reads_text=True, paper="LLM-CF", **SEQ)
register("llmcf-din", LLMCFDIN, "ctr", task="ctr", reads_text=True, paper="LLM-CF", lr=1e-3, batch_size=2048, epochs=100,
         patience=5, valid_metric="auc")
# names that pick a registered model by a setting: run llmcf --set backbone=sasrec | din
ALIASES = {"llmcf": ("backbone", {"sasrec": "llmcf-sasrec", "din": "llmcf-din"}, "sasrec")}


def resolve_alias(name: str, settings: dict) -> str:
    """``llmcf`` + ``backbone=din`` -> ``llmcf-din`` (the setting is consumed); other names unchanged."""
    if name not in ALIASES:
        return name
    key, names, default = ALIASES[name]
    value = settings.pop(key, default)
    if value not in names:
        raise ValueError(f"{name}: unknown {key} {value!r}; valid: {sorted(names)}")
    return names[value]


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {sorted(MODELS)}")
    return MODELS[name]


__all__ = ["ALIASES", "MODELS", "DIN", "LLMCFDIN", "LLMCFSASRec", "PAD", "AlphaRec", "AlphaRecLinear", "CTRRecommender", "IDTextConcat", "LLMESR", "LightGCN",
           "MF", "ModelSpec", "Molar", "Pop", "Recommender", "SASRec", "get_model", "register", "resolve_alias"]
# BAHE: SmolLM2 cut at layer 4, two trainable upper layers; small batches (the token-level baseline runs the
# lower layers over every behaviour's tokens at each step), early stop on valid AUC
register("bahe", BAHE, "ctr", task="ctr", reads_text=True, paper="BAHE", lr=1e-3, batch_size=64, epochs=20, patience=2,
         valid_metric="auc")
