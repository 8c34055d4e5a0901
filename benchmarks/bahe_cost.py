"""What BAHE saves: seconds and peak memory of one training step and of inference, token-level vs atomic
behaviour encoding, across history lengths, next to what the layer shapes predict.

    python benchmarks/bahe_cost.py                                  # ml-100k, histories 10 20 50 100
    python benchmarks/bahe_cost.py --datasets ml-100k ml-1m --batch 16 --threads 2

For each dataset and history length M: a CTR view with M behaviours per row, a fixed batch of rows whose
history is full (M behaviours), the two encodings built with the same seed (same weights), then the median
time of ``--reps`` training steps (loss, backward, optimiser step) after one warm-up, the peak tensor memory of
one step (``llmrec_lite.profiling``), and inference milliseconds per example. Prints a markdown table; the
evidence store's ``bahe_cost`` table (benchmarks/evidence.jsonl) keeps the rows with the settings, the thread count
and the machine (a row of the same dataset and M is replaced). Run it alone: another
torch process on the same cores distorts the times many-fold.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    from llmrec_lite.config import add_device_args, apply_device_args

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["ml-100k"])
    ap.add_argument("--histories", type=int, nargs="+", default=[10, 20, 50, 100])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--split-layer", type=int, default=4)
    ap.add_argument("--upper-layers", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5, help="at least this many timed steps per encoding")
    ap.add_argument("--min-seconds", type=float, default=20.0,
                    help="and more until they add up to this (a fast BAHE step gets many repetitions)")
    ap.add_argument("--users", type=int, default=400, help="users sampled per dataset (cost depends on M, not on users)")
    add_device_args(ap)
    args = ap.parse_args()

    import torch

    from llmrec_lite.data import ctr_view, load_dataset
    from llmrec_lite.explore.bahe import measure_encodings
    from llmrec_lite import evidence

    device = apply_device_args(args)
    kw = dict(split_layer=args.split_layer, upper_layers=args.upper_layers, tokens=args.tokens)
    rows = []
    for name in args.datasets:
        ds = load_dataset(name, verbose=False)
        if ds.n_users > args.users:
            ds = ds.sample_users(args.users, seed=0)
        for m in args.histories:
            try:
                row = {"dataset": name} | measure_encodings(ctr_view(ds, max_history=m), args.batch, args.reps, device,
                                                         min_seconds=args.min_seconds, **kw)
            except ValueError as e:
                print(f"{name}, history {m}: skipped ({e})", flush=True)
                continue
            rows.append(row)
            print(" | ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    cols = ["dataset", "history", "tokens per behaviour", "token s/step", "atomic s/step", "speed-up", "predicted speed-up",
            "speed-up low", "speed-up high", "steps timed", "token step MB", "atomic step MB", "memory ratio",
            "token total MB", "atomic total MB", "total memory ratio", "token ms/example", "atomic ms/example",
            "table build s", "items"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    env = {"threads": torch.get_num_threads(), "device": str(device), "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    command = "python benchmarks/bahe_cost.py " + " ".join(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                                           for k, v in vars(args).items() if v is not None)
    evidence.write([evidence.table_row("bahe_cost", [r["dataset"], r["history"]], r, command, vars(args), env) for r in rows])
    print(f"wrote {evidence.path()}")


if __name__ == "__main__":
    main()
