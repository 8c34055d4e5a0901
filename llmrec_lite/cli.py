"""Command line: ``python -m llmrec_lite run MODEL --dataset ml-100k`` and ``python -m llmrec_lite info``."""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from .config import CACHE_ENV, DATA_ENV, cache_dir, data_root, resolve_device
from .data import LOADERS, DataError, load_dataset, make_split
from .io import save_json
from .metrics import GROUPS, evaluate
from .models import MODELS, get_model
from .trainer import fit

REPORT = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@10")
DATASETS = sorted(LOADERS) + ["synthetic"]


def train_and_test(model: str, split, seed: int = 2020, device="auto", progress: bool = True, **overrides):
    """Build ``model`` on ``split``, train it (early stopping on validation) and test it.

    Returns (fitted model, TrainResult, record) where record is the JSON the CLI writes.
    ``overrides``: trainer settings (epochs, lr, batch_size, patience, valid_metric) or model
    constructor arguments (e.g. dim, n_layers).
    """
    cls, protocol, defaults = get_model(model)
    if split.protocol != protocol:
        raise ValueError(f"{model} expects the {protocol!r} split, got {split.protocol!r}")
    hp = dict(defaults)
    trainer_keys = {"epochs", "lr", "batch_size", "patience", "valid_metric", "weight_decay", "eval_every"}
    hp.update({k: v for k, v in overrides.items() if k in trainer_keys})
    model_kw = {k: v for k, v in overrides.items() if k not in trainer_keys}
    torch.manual_seed(seed)
    m = cls(split, **model_kw)
    res = fit(m, split, seed=seed, device=device, progress=progress, **hp)
    test = evaluate(m, split, "test", device=resolve_device(device))
    keep = REPORT + ("hr@20",)
    record = {
        "model": model, "dataset": split.dataset.name, "split": protocol, "seed": seed,
        "metrics": {k: test[k] for k in keep}
        | {"by_group": {g: {k: test["by_group"][g][k] for k in keep + ("n_users",)} for g in GROUPS}},
        "n_test_users": test["n_users"],
        "train_seconds": res.train_seconds, "epochs": res.epochs, "best_epoch": res.best_epoch,
        "seconds_per_epoch": res.seconds_per_epoch, "best_valid": res.best_valid,
        "hyperparameters": hp | model_kw, "dataset_stats": split.dataset.stats(),
        "environment": {"torch": torch.__version__, "device": str(resolve_device(device)),
                        "python": platform.python_version()},
    }
    return m, res, record


def run(model: str, dataset: str = "ml-100k", epochs: int | None = None, seed: int = 2020, device="auto",
        root=None, progress: bool = True, min_rating: float | None = None, k_core: int = 0, **overrides) -> dict:
    """Load ``dataset`` (optionally keeping ratings >= min_rating, then a k-core), split it the way
    ``model`` needs, train and test; return the JSON record."""
    _, protocol, _ = get_model(model)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {DATASETS}")
    if epochs is not None:
        overrides["epochs"] = epochs
    ds = load_dataset(dataset, root=root, min_rating=min_rating, k_core=k_core)
    split = make_split(ds, protocol, seed=seed)
    return train_and_test(model, split, seed=seed, device=device, progress=progress, **overrides)[2]


def format_table(records: list[dict], groups: bool = True) -> str:
    """A plain-text metrics table; one row per record (and per group if asked)."""
    cols = ["model", "rows"] + list(REPORT)
    lines = []
    for r in records:
        rows = [("all", r["metrics"])] + ([(g, r["metrics"]["by_group"][g]) for g in GROUPS] if groups else [])
        for name, m in rows:
            lines.append([r["model"], name] + [f"{m[k]:.4f}" for k in REPORT])
    widths = [max(len(c), *(len(l[i]) for l in lines)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*["model", "users"] + list(REPORT)), sep] + [fmt.format(*l) for l in lines])


def info() -> str:
    from .text.models import ModelNotFoundError, resolve

    root = data_root()
    lines = [f"data root: {root}  ({'from ' + DATA_ENV if os.environ.get(DATA_ENV) else 'default; set ' + DATA_ENV + ' to change'})"]
    for name in sorted(LOADERS):
        folder = root / {"amazon-pantry": "amazon-prime-pantry"}.get(name, name)
        lines.append(f"  {name:14s} {'found' if folder.is_dir() else 'missing (downloaded on first use)'}: {folder}")
    lines.append(f"cache: {cache_dir()}  (set {CACHE_ENV} to change)")
    for lm in ("minilm", "smollm2"):
        try:
            s = resolve(lm)
            lines.append(f"  {lm:8s} {s.path}{'/' + s.gguf_file if s.gguf_file else ''}")
        except ModelNotFoundError as e:
            lines.append(f"  {lm:8s} MISSING: {e}")
    lines.append(f"device: {resolve_device('auto')}  torch {torch.__version__}")
    lines.append(f"models: {', '.join(sorted(MODELS))}; datasets: {', '.join(DATASETS)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmrec_lite", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and test one model; print a metrics table, write JSON")
    r.add_argument("model", help=f"one of: {', '.join(sorted(MODELS))}")
    r.add_argument("--dataset", default="ml-100k", help=f"one of: {', '.join(DATASETS)}")
    r.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: per model)")
    r.add_argument("--seed", type=int, default=2020)
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    r.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    r.add_argument("--data-dir", default=None, help=f"data root (default: ${DATA_ENV} or ./data)")
    r.add_argument("--min-rating", type=float, default=None, help="keep ratings >= this as positives (default: all)")
    r.add_argument("--k-core", type=int, default=0, help="drop users/items with fewer interactions, iteratively")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_parser("info", help="where data, caches and language models are found")
    q = sub.add_parser("quickstart", help="pop, MF and LightGCN on ml-100k: the README's main job")
    q.add_argument("--out", type=Path, default=Path("results/quickstart.json"))
    q.add_argument("--epochs", type=int, default=None)
    args = p.parse_args(argv)
    try:
        if args.cmd == "info":
            print(info())
            return 0
        if args.cmd == "quickstart":
            recs = [run(m, "ml-100k", epochs=args.epochs) for m in ("pop", "mf", "lightgcn")]
            print(format_table(recs))
            save_json(recs, args.out)
            print(f"wrote {args.out}")
            return 0
        t = time.perf_counter()
        rec = run(args.model, args.dataset, epochs=args.epochs, seed=args.seed, device=args.device,
                  root=args.data_dir, progress=not args.quiet, min_rating=args.min_rating, k_core=args.k_core)
        print(format_table([rec]))
        print(f"{rec['epochs']} epochs (best {rec['best_epoch']}), {rec['seconds_per_epoch']:.2f} s/epoch, "
              f"{time.perf_counter() - t:.1f} s in all")
        if args.out:
            save_json(rec, args.out)
            print(f"wrote {args.out}")
        return 0
    except (ValueError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
