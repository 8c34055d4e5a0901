"""Command line: ``python -m llmrec_lite run MODEL --dataset ml-100k``, ``... leaderboard``, ``... verdicts`` and
``... info``."""
from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from pathlib import Path

import torch

from .config import CACHE_ENV, DATA_ENV, cache_dir, data_root, resolve_device, set_threads
from .data import LOADERS, DataError
from .text.models import ModelNotFoundError
from .experiment import DATASETS, format_table, run
from .io import save_json
from .io import save_npy as save_npy_file
from .models import MODELS, resolve_alias

def info() -> str:
    from .data.amazon import PANTRY_FILES, SCIENTIFIC_FILES
    from .data.download import verify
    from .data.movielens import FILE_MD5
    from .text.models import resolve

    CHECKSUMS = FILE_MD5 | {"amazon-pantry": PANTRY_FILES, "amazon-scientific": SCIENTIFIC_FILES}
    root = data_root()
    lines = [f"data root: {root}  ({'from ' + DATA_ENV if os.environ.get(DATA_ENV) else 'default; set ' + DATA_ENV + ' to change'})"]
    for name in sorted(LOADERS):
        folder = root / {"amazon-pantry": "amazon-prime-pantry"}.get(name, name)
        if not folder.is_dir():
            state = "missing (downloaded on first use)"
        elif name in CHECKSUMS:
            problems = verify(folder, CHECKSUMS[name])
            state = "found, checksums ok" if not problems else "PROBLEM: " + "; ".join(problems)
        else:
            state = "found (no checksums pinned)"
        lines.append(f"  {name:14s} {state}: {folder}")
    lines.append(f"cache: {cache_dir()}  (set {CACHE_ENV} to change)")
    for lm in ("minilm", "smollm2"):
        try:
            s = resolve(lm)
            lines.append(f"  {lm:8s} {s.path}{'/' + s.gguf_file if s.gguf_file else ''}")
        except ModelNotFoundError as e:
            lines.append(f"  {lm:8s} MISSING: {e}")
    lines.append(f"device: {resolve_device('auto')}  torch {torch.__version__}")
    for task in ("ranking", "ctr"):
        names = [f"{n} ({s.protocol}{', text' if s.reads_text else ''})" for n, s in sorted(MODELS.items()) if s.task == task]
        lines.append(f"{task} models: {', '.join(names)}")
    lines.append(f"datasets: {', '.join(DATASETS)}")
    return "\n".join(lines)


def parse_settings(items: list[str]) -> dict:
    """["alpha=0.01", "distill=False", "loss_type=bce"] -> {"alpha": 0.01, "distill": False, "loss_type": "bce"}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r} (e.g. --set loss_type=bce)")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value  # a plain string such as bce
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmrec_lite", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and test one model; print a metrics table, write JSON")
    r.add_argument("model", help=f"one of: {', '.join(sorted(MODELS))}; llmcf (--set backbone=sasrec | din)")
    r.add_argument("--dataset", default="ml-100k", help=f"one of: {', '.join(DATASETS)}")
    r.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: per model)")
    r.add_argument("--seed", type=int, default=2020)
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    r.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    r.add_argument("--data-dir", default=None, help=f"data root (default: ${DATA_ENV} or ./data)")
    r.add_argument("--min-rating", type=float, default=None, help="keep ratings >= this as positives (default: all)")
    r.add_argument("--k-core", type=int, default=0, help="drop users/items with fewer interactions, iteratively")
    r.add_argument("--encoder", default=None,
                   help="models that read item text: minilm | smollm2 | random | a HF path/id (default minilm)")
    r.add_argument("--pooling", default=None, help="alpharec / llmesr: mean | last | first token (default mean)")
    r.add_argument("--layer", type=int, default=None, help="alpharec / llmesr: hidden layer (-1 = last, default)")
    r.add_argument("--no-center", action="store_true",
                   help="alpharec models: keep the raw LM vectors (default: subtract the catalogue's mean vector)")
    r.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: all cores; use 1 when running several jobs at once)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="a model or trainer setting, repeatable: --set loss_type=bce --set distill=False --set lr=5e-4")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--retrain", action="store_true",
                   help="train even when the model store holds this exact run (and overwrite it); "
                        "LLMREC_MODEL_STORE=off disables the store")
    sub.add_parser("info", help="where data, caches and language models are found")
    q = sub.add_parser("quickstart", help="pop, MF and LightGCN on ml-100k: the README's main job")
    q.add_argument("--out", type=Path, default=Path("results/quickstart.json"))
    q.add_argument("--epochs", type=int, default=None)
    e = sub.add_parser("encode", help="encode a dataset's item texts into the embedding cache (shards under accelerate launch)")
    e.add_argument("--dataset", default="ml-100k", help=f"one of: {', '.join(DATASETS)}")
    e.add_argument("--encoder", default="minilm", help="minilm | smollm2 | a HF path/id")
    e.add_argument("--pooling", default="mean", help="mean | last | first | mean_skip_first")
    e.add_argument("--layer", type=int, default=-1, help="hidden layer (-1 = last)")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: float32 on CPU, bf16 on CUDA)")
    e.add_argument("--data-dir", default=None, help=f"data root (default: ${DATA_ENV} or ./data)")
    e.add_argument("--out", type=Path, default=None, help="also write the table here (.npy)")
    lb = sub.add_parser("leaderboard", help="every stored benchmark run side by side (mean ± std over seeds)")
    lb.add_argument("--dataset", default=None, help="only this dataset (default: all with stored runs)")
    lb.add_argument("--task", choices=["ranking", "ctr"], default=None)
    lb.add_argument("--format", choices=["markdown", "json"], default="markdown")
    lb.add_argument("--evidence", type=Path, default=None,
                    help="the evidence store to read (default: benchmarks/evidence.jsonl)")
    vd = sub.add_parser("verdicts", help="one row per paper: its claim, the gain over seeds, a verdict (from the evidence store)")
    vd.add_argument("--write", action="store_true", help="also write it into README.md, with docs/benchmarks.md's cost tables")
    args = p.parse_args(argv)
    try:
        if args.cmd == "verdicts":
            from .verdicts import table, write_docs

            print(write_docs() if args.write else table())
            return 0
        if args.cmd == "leaderboard":
            from .leaderboard import leaderboard, load_records, to_json, to_markdown

            board = leaderboard(load_records(args.evidence), dataset=args.dataset, task=args.task)
            print(to_markdown(board) if args.format == "markdown" else to_json(board))
            return 0
        if args.cmd == "encode":
            from .data import load_dataset
            from .text.shard import encode_sharded

            t = time.perf_counter()
            texts = load_dataset(args.dataset, root=args.data_dir, verbose=False).item_texts
            table = encode_sharded(texts, args.encoder, args.pooling, args.layer, batch_size=args.batch_size,
                                   dtype=args.dtype)
            if table is not None:  # the main process
                from accelerate import PartialState

                n = PartialState().num_processes  # the state encode_sharded set up
                print(f"encoded {len(texts)} item texts of {args.dataset} with {args.encoder} ({args.pooling}, layer "
                      f"{args.layer}): {table.shape[1]}-d, {n} process{'es' if n > 1 else ''}, "
                      f"{time.perf_counter() - t:.1f} s; cached for every model that reads item text")
                if args.out:
                    save_npy_file(table, args.out)
                    print(f"wrote {args.out}")
            return 0
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
        if args.threads is not None:
            set_threads(args.threads)
        settings = parse_settings(args.settings)
        model = resolve_alias(args.model, settings)  # llmcf --set backbone=din -> llmcf-din
        lm = {"encoder": args.encoder} if args.encoder else {}
        enc_kw = {k: v for k, v in (("pooling", args.pooling), ("layer", args.layer)) if v is not None}
        text_models = sorted(m for m, spec in MODELS.items() if spec.reads_text)
        if (lm or enc_kw or args.no_center) and model not in text_models:
            raise ValueError(f"--encoder/--pooling/--layer/--no-center apply to the models that read item text "
                             f"{text_models}, not {args.model!r}")
        if args.no_center:
            if not model.startswith("alpharec"):
                raise ValueError("--no-center applies to the alpharec models (the others read the raw LM vectors)")
            lm["center"] = False
        if enc_kw:
            lm["encoder_kwargs"] = enc_kw
        for key, flag in (("seed", "--seed"), ("device", "--device"), ("dataset", "--dataset"),
                          ("min_rating", "--min-rating"), ("k_core", "--k-core"), ("encoder", "--encoder")):
            if key in settings:
                raise ValueError(f"--set {key}=... : use {flag} instead")
        if "epochs" in settings and args.epochs is not None:
            raise ValueError("give the number of epochs once: --epochs N or --set epochs=N")
        epochs = settings.pop("epochs", args.epochs)
        rec = run(model, args.dataset, epochs=epochs, seed=args.seed, device=args.device,
                  root=args.data_dir, progress=not args.quiet, min_rating=args.min_rating, k_core=args.k_core,
                  retrain=True if args.retrain else None, **lm, **settings)
        print(format_table([rec]))
        print(f"{rec['epochs']} epochs (best {rec['best_epoch']}), {rec['seconds_per_epoch']:.2f} s/epoch, "
              f"{time.perf_counter() - t:.1f} s in all")
        if args.out:
            save_json(rec, args.out)
            print(f"wrote {args.out}")
        return 0
    except (ValueError, DataError, FileNotFoundError, ModelNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
