"""What BAHE saves: seconds and peak memory of one training step and of inference, token-level vs atomic
behaviour encoding, across history lengths, next to what the layer shapes predict.

    python benchmarks/bahe_cost.py                       # notebook 05's grid: ml-100k and ml-1m, M 10 20 50 100 (~10 min)
    python benchmarks/bahe_cost.py --histories 20 --datasets ml-100k --threads 2

For each dataset and history length M (``explore.bahe.cost_grid``, the grid notebook 05's full run measures too):
a CTR view with M behaviours per row, a fixed batch of rows whose history is full, the two encodings built with the
same seed (same weights), then ``explore.bahe.measure_encodings``: the median time of at least ``--reps`` training
steps, more until ``--min-seconds``, with the speed-up's quartile range; the memory a step adds and the total with
weights and Adam's state; inference at the same batch size; BAHE's table built cold (at ml-100k, M = 20). Prints a
markdown table and replaces the evidence store's ``bahe_cost`` table (with the settings, threads and machine). Run
it alone: another torch process on the same cores distorts the times many-fold.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    from llmrec_lite.config import add_device_args, apply_device_args
    from llmrec_lite.explore.bahe import COMPARISON, COST_GRID

    g, lm = COST_GRID, COMPARISON["lm"]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(g["datasets"]))
    ap.add_argument("--histories", type=int, nargs="+", default=list(g["histories"]))
    ap.add_argument("--batch", type=int, default=g["batch_size"])
    ap.add_argument("--split-layer", type=int, default=lm["split_layer"])
    ap.add_argument("--upper-layers", type=int, default=lm["upper_layers"])
    ap.add_argument("--tokens", type=int, default=lm["tokens"])
    ap.add_argument("--reps", type=int, default=g["reps"], help="at least this many timed steps per encoding")
    ap.add_argument("--min-seconds", type=float, default=g["min_seconds"],
                    help="and more until they add up to this (a fast BAHE step gets many repetitions)")
    ap.add_argument("--users", type=int, default=g["users"], help="users sampled per dataset (cost depends on M, not on users)")
    add_device_args(ap)
    args = ap.parse_args()

    from llmrec_lite.explore.bahe import cost_grid, save_cost_grid

    device = apply_device_args(args)
    cost = cost_grid(device=device, **{
        "datasets": tuple(args.datasets), "histories": tuple(args.histories), "batch_size": args.batch, "reps": args.reps,
        "min_seconds": args.min_seconds, "users": args.users,
        "lm": {"split_layer": args.split_layer, "upper_layers": args.upper_layers, "tokens": args.tokens}})
    cols = ["dataset", "history", "tokens per behaviour", "token s/step", "atomic s/step", "speed-up", "predicted speed-up",
            "speed-up low", "speed-up high", "steps timed", "token step MB", "atomic step MB", "memory ratio",
            "token total MB", "atomic total MB", "total memory ratio", "token ms/example", "atomic ms/example",
            "table build s", "items"]
    shown = cost[[c for c in cols if c in cost]]
    print("\n| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns))
    for r in shown.itertuples(index=False):
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |")
    command = "python benchmarks/bahe_cost.py " + " ".join(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                                           for k, v in vars(args).items() if v is not None)
    save_cost_grid(cost, command, vars(args))
    print("wrote the store's bahe_cost table")


if __name__ == "__main__":
    main()
