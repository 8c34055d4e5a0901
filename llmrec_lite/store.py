"""The trained-model store: a finished training run is saved (safetensors, never pickle) with its record, keyed by
everything that determines it, so that an identical later run, from a notebook or the CLI, loads it in seconds.

    key = run_key("sasrec", split, seed=2020, device="cpu", overrides={"lr": 5e-4})
    hit = load(key)            # None when absent (or unreadable: one line says so, the caller trains again)
    save(key, model, meta)     # one atomic .safetensors file; ``meta`` (JSON) travels in its header

The key holds the model name, the dataset and a fingerprint of the split's rows, the seed, every override (arrays by
content), the device type, torch's version and a hash of the package's training code (any edit to a model, the
trainer, the losses, the data or text code retrains). The store lives in ``$LLMREC_MODEL_STORE`` or
``<cache>/models``; ``LLMREC_MODEL_STORE=off`` disables it and ``LLMREC_RETRAIN=1`` (the CLI's ``--retrain``, a
notebook's ``RETRAIN`` switch) trains again and overwrites what was stored. Threads are not in the key: one
machine's runs with 2 threads and with 1 differ in BLAS summation order only (the notebooks allow 1e-3 on a
metric).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import __version__
from .config import cache_dir, flag
from .io import atomic_path

STORE_ENV = "LLMREC_MODEL_STORE"
RETRAIN_ENV = "LLMREC_RETRAIN"
PACKAGE = Path(__file__).resolve().parent
# the code that decides what a training run produces (not plots, explorers, the CLI or the leaderboard)
TRAINING_CODE = ("models", "data", "text", "trainer.py", "losses.py", "metrics.py", "graph.py", "retrieval.py",
                 "experiment.py", "config.py")


class Unkeyable(ValueError):
    """An override whose content cannot be fingerprinted (an arbitrary object): the run is not stored."""


def enabled() -> bool:
    return os.environ.get(STORE_ENV, "").strip().lower() != "off"


def retrain_requested() -> bool:
    return flag(RETRAIN_ENV)


def store_dir() -> Path:
    path = os.environ.get(STORE_ENV, "").strip()
    d = Path(path).expanduser() if path and path.lower() != "off" else cache_dir() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _digest(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()[:20]


_CODE_HASH: str | None = None


def code_hash() -> str:
    """SHA-256 (20 hex) of the package's training code, read once per process."""
    global _CODE_HASH
    if _CODE_HASH is None:
        files = []
        for part in TRAINING_CODE:
            p = PACKAGE / part
            files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
        _CODE_HASH = _digest(*(f.relative_to(PACKAGE).as_posix().encode() + f.read_bytes() for f in files))
    return _CODE_HASH


def fingerprint(value):
    """A JSON-able stand-in for ``value`` that changes whenever its content does: arrays and tensors by the
    SHA-256 of their bytes, frames by pandas' row hashes; containers recursively. Other objects raise Unkeyable."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [fingerprint(v) for v in value]
    if isinstance(value, dict):
        return {str(k): fingerprint(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, torch.nn.Module):  # a fitted model passed in (Molar's ID model): its class and weights
        return {"module": type(value).__name__, "state": fingerprint(dict(value.state_dict()))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. LLM-CF's CoT pool
        return {"dataclass": type(value).__name__,
                "fields": fingerprint({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})}
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        return {"array": list(a.shape), "dtype": str(a.dtype), "sha256": _digest(a.tobytes())}
    if isinstance(value, pd.DataFrame):
        return {"frame": list(value.shape), "sha256": _frame_hash(value)}
    raise Unkeyable(f"a {type(value).__name__} cannot be fingerprinted")


def _frame_hash(df: pd.DataFrame) -> str:
    chunks = [",".join(map(str, df.columns)).encode()]
    for col in df.columns:
        s = df[col]
        if s.dtype == object:  # lists of item ids (CTR histories), texts
            chunks.append("\x1f".join(map(repr, s.tolist())).encode())
        else:
            chunks.append(pd.util.hash_pandas_object(s, index=False).to_numpy().tobytes())
    return _digest(*chunks)


def split_fingerprint(split) -> dict:
    """The split as its rows: dataset name, protocol and a hash of each part (train / valid / test)."""
    cache = split.__dict__.setdefault("_store_fingerprint", {})
    if not cache:
        cache.update({"dataset": split.dataset.name, "protocol": split.protocol, "n_users": split.n_users,
                      "n_items": split.n_items,
                      **{p: _frame_hash(split.part(p)) for p in ("train", "valid", "test")}})
        texts = getattr(split.dataset, "item_texts", None)
        if texts is not None:
            cache["item_texts"] = _digest("\x1f".join(texts).encode())
    return dict(cache)


def run_key(model: str, split, seed: int, device, overrides: dict) -> tuple[dict, str]:
    """(key, its hash): what determines a training run. Raises Unkeyable for an override without a fingerprint."""
    key = {"model": model, "split": split_fingerprint(split), "seed": int(seed),
           "overrides": fingerprint(dict(overrides)), "device": torch.device(device).type, "torch": torch.__version__,
           "llmrec_lite": __version__, "code": code_hash(), "lm_dtype": _lm_dtype(device)}
    return key, key_hash(key)


def _lm_dtype(device) -> str:
    from .text.models import default_dtype

    return default_dtype(torch.device(device))


def key_hash(key: dict) -> str:
    return _digest(json.dumps(key, sort_keys=True).encode())


def path_of(key_hash: str, model: str) -> Path:
    return store_dir() / f"{model}-{key_hash}.safetensors"


def tensor_hashes(model: torch.nn.Module) -> dict[str, str]:
    """{name: SHA-256 of the bytes} of every tensor in the model's state dict."""
    out = {}
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        out[k] = _digest(str(t.dtype).encode(), str(tuple(t.shape)).encode(),  # 0-d and bf16 tensors too
                         t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return out


def save(key: dict, key_hash: str, model: torch.nn.Module, meta: dict, initial: dict[str, str] | None = None) -> Path:
    """Write the model's weights and ``meta`` (JSON, with the key) to one file, atomically. Tensors whose bytes equal
    ``initial`` (``tensor_hashes`` taken right after construction: a frozen pre-trained LM's layers, say) are left out,
    with their hashes: building the model again reproduces them, and ``load`` checks that it did."""
    from safetensors.torch import save_file

    path = path_of(key_hash, key["model"])
    now = tensor_hashes(model) if initial else {}
    unchanged = {k: h for k, h in now.items() if initial.get(k) == h} if initial else {}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items() if k not in unchanged}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"llmrec_lite": json.dumps({"key": key, **meta, "unchanged": unchanged})})
    return path


def load(key_hash: str, model: str) -> tuple[dict, dict] | None:
    """(state dict, meta) of a stored run, or None when there is none. An unreadable file is reported in one line
    and treated as absent (the run trains again and overwrites it)."""
    from safetensors import safe_open

    path = path_of(key_hash, model)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["llmrec_lite"])
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any unreadable file (truncated, not safetensors, bad JSON) is the same case
        print(f"model store: {path.name} is unreadable ({type(e).__name__}: {str(e)[:120]}); training again")
        return None
    return state, meta
