"""Where data, caches and models are found.

Data root, in order: an explicit argument -> the ``LLMREC_DATA_DIR`` environment variable -> the
repository's ``data/`` folder. The cache (embeddings, LLM generations) lives in ``LLMREC_CACHE_DIR``
or ``<repo>/.cache``.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "LLMREC_DATA_DIR"
CACHE_ENV = "LLMREC_CACHE_DIR"
SMOKE_ENV = "LLMREC_SMOKE"
FULL_ENV = "LLMREC_FULL"


def data_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return REPO_ROOT / "data"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    d = Path(path or os.environ.get(CACHE_ENV) or REPO_ROOT / ".cache").expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def flag(name: str) -> bool:
    """An on/off environment variable: unset, "", "0", "false", "no" and "off" are off."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def smoke() -> bool:
    """True when notebooks/tests should shrink epochs and sizes (``LLMREC_SMOKE=1``)."""
    return flag(SMOKE_ENV)


def full() -> bool:
    """True when a notebook should recompute its sweeps, ablations and other seeds itself (``LLMREC_FULL=1``)
    instead of reading them from the evidence store; its default run trains only the headline comparison."""
    return flag(FULL_ENV) and not smoke()


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N, mps") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but torch sees no CUDA GPU (torch {torch.__version__}); "
                         f"use --device cpu, or install a CUDA build of torch")
    if d.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} asked for but MPS is not available; use --device cpu")
    if d.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}; valid: auto, cpu, cuda, cuda:N, mps")
    return d


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads in torch (intra-op). Two processes that each use every core fight over them
    (OpenMP threads spin while they wait): give each ``n`` = cores / jobs, or set OMP_NUM_THREADS."""
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)


def add_device_args(parser, device: str = "cpu") -> None:
    """``--threads N`` and ``--device D`` for a benchmark script's argparse parser (see ``apply_device_args``)."""
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default=device, help="cpu | cuda | mps | auto")


def apply_device_args(args) -> torch.device:
    """Set the threads ``add_device_args`` parsed, and return the device (a bad one fails here, before any work)."""
    if args.threads:
        set_threads(args.threads)
    return resolve_device(args.device)
