"""Seconds per training epoch against data size: each model trained for a few epochs on each dataset (no early
stopping reached; the cost, not the accuracy), so notebook 07 can draw how training cost grows with interactions.

    python benchmarks/cost_growth.py                                  # every model x dataset below (~30 min, 2 cores)
    python benchmarks/cost_growth.py --models mf sasrec --datasets ml-1m

Writes the evidence store's ``cost_growth`` table (benchmarks/evidence.jsonl; rows {model, dataset, interactions,
users, items, s/epoch, epochs, seconds} with the environment); a row stored for the same (model, dataset) is
replaced, the others kept.
Time it alone: a second torch process on 2 cores slows both 10-40x. One epoch = one pass over the train data as
each model's trainer defines it (validation excluded); LM vectors come from the embedding cache (their one-off
encoding time is not an epoch's cost and is left out).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec_lite.experiment import run  # noqa: E402
from llmrec_lite import evidence  # noqa: E402

MODELS = ["mf", "lightgcn", "sasrec", "alpharec", "llmesr"]
DATASETS = ["ml-100k", "amazon-pantry", "amazon-scientific", "ml-1m"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--datasets", nargs="+", default=DATASETS)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run (s/epoch is their mean)")
    args = ap.parse_args()
    for dataset in args.datasets:
        for model in args.models:
            t = time.perf_counter()
            rec = run(model, dataset, epochs=args.epochs, patience=args.epochs + 1, progress=False, store=False)
            st = rec["dataset_stats"]
            row = {"model": model, "dataset": dataset, "interactions": st["interactions"], "users": st["users"],
                   "items": st["items"], "s/epoch": rec["seconds_per_epoch"], "epochs": rec["epochs"],
                   "seconds": time.perf_counter() - t}
            print(f"{model:9s} {dataset:18s} {st['interactions']:>8d} interactions: {rec['seconds_per_epoch']:8.2f} s/epoch "
                  f"({time.perf_counter() - t:.0f} s in all)", flush=True)
            env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
                   "date": time.strftime("%Y-%m-%d"), "cpu_seconds": rec["environment"].get("cpu_seconds"),
                   "contended": rec["environment"].get("contended")}
            evidence.write([evidence.table_row(  # a cut-off run keeps what it did
                "cost_growth", [model, dataset], row,
                f"python benchmarks/cost_growth.py --models {model} --datasets {dataset}", {"epochs": args.epochs}, env)])
    print(f"wrote {evidence.path()}")


if __name__ == "__main__":
    main()
