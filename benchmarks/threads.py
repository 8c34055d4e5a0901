"""Seconds per training epoch with 1 and with 2 CPU threads, per model (ml-100k): the graph and factorisation
models do small sparse and gather operations where a second thread costs more than it gives. Prints a table and
JSON; run it alone (another job on the cores distorts it many-fold).

    python benchmarks/threads.py                       # mf lightgcn alpharec sasrec, 8 epochs each
    python benchmarks/threads.py --models lightgcn --epochs 20
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmrec_lite.data import load_dataset, make_split  # noqa: E402
from llmrec_lite.models import get_model  # noqa: E402
from llmrec_lite.trainer import fit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["mf", "lightgcn", "alpharec", "sasrec"])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    ds = load_dataset(args.dataset, verbose=False)
    rows = []
    for name in args.models:
        spec = get_model(name)
        split = make_split(ds, spec.protocol, seed=2020)
        row = {"model": name, "dataset": args.dataset}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(2020)
            m = spec.cls(split)
            t = time.perf_counter()
            res = fit(m, split, epochs=args.epochs, patience=args.epochs + 1, progress=False,
                      **{k: v for k, v in spec.defaults.items() if k in ("lr", "batch_size", "valid_metric")})
            row[f"{threads} thread s/epoch"] = round(res.seconds_per_epoch, 3)
            row[f"{threads} thread s/epoch with validation"] = round((time.perf_counter() - t) / args.epochs, 3)
            row[f"{threads} thread valid"] = res.best_valid
        row["same result"] = row["1 thread valid"] == row["2 thread valid"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    cols = ["model", "1 thread s/epoch", "2 thread s/epoch", "1 thread s/epoch with validation",
            "2 thread s/epoch with validation", "same result"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
