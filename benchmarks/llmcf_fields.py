"""LLM-CF on the CTR view: what the ICT adds once DIN has a user field, and whether similar retrieval beats random.

    python benchmarks/llmcf_fields.py            # ml-100k CTR view, seed 2020, 10% feature pool (about 45 min, 2 cores)
    python benchmarks/llmcf_fields.py --smoke    # a small subsample, one epoch (checks the script runs)

Notebook 06 found DIN + ICT above DIN, but the K = 0 control (the ICT without any example) just as high: the
ICT's feature token carries a user-ID embedding that the project's DIN lacks (the official LLM-CF DIN has one).
This script trains, on the same rows and seed: DIN, DIN with a user field (``user_field=True``), and LLM-CF on that
DIN with K = 0, similar retrieval (official inner product ``dot`` and ``cosine``) and random retrieval; the pool is a
10% sample of train rows without reasoning (``feature_pool``, ``cot=False``: no LLM needed). It prints test AUC and
paired bootstrap intervals over test rows, and writes benchmarks/llmcf_fields.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec_lite.data import ctr_view, load_dataset  # noqa: E402
from llmrec_lite.experiment import train_and_test  # noqa: E402
from llmrec_lite.io import save_json  # noqa: E402
from llmrec_lite.metrics import paired_ctr_difference  # noqa: E402
from llmrec_lite.models.llmcf_offline import feature_pool  # noqa: E402

PAIRS = [("DIN + user field", "DIN"), ("K = 0, user field", "DIN + user field"),
         ("similar (dot), user field", "random, user field"), ("similar (cosine), user field", "random, user field"),
         ("similar (cosine), user field", "K = 0, user field"), ("similar (dot), no user field", "random, no user field")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--smoke", action="store_true", help="subsample the view, one epoch per model")
    ap.add_argument("--out", type=Path, default=HERE / "llmcf_fields.json")
    args = ap.parse_args()
    view = ctr_view(load_dataset("ml-100k"))
    if args.smoke:
        view = view.subsample(train=4000, valid=1000, test=1000, seed=args.seed)
    pool = feature_pool(view, n=len(view.train) // 10, seed=0)
    ict = {"pool": pool, "cot": False}
    configs = {"DIN": ("din", {}), "DIN + user field": ("din", {"user_field": True}),
               "K = 0, user field": ("llmcf-din", ict | {"k": 0, "user_field": True}),
               "similar (dot), user field": ("llmcf-din", ict | {"user_field": True}),
               "similar (cosine), user field": ("llmcf-din", ict | {"user_field": True, "similarity": "cosine"}),
               "random, user field": ("llmcf-din", ict | {"user_field": True, "retrieval": "random"}),
               "similar (dot), no user field": ("llmcf-din", ict),
               "random, no user field": ("llmcf-din", ict | {"retrieval": "random"})}
    train = {"epochs": 1} if args.smoke else {"patience": 3}  # as notebook 06
    runs, rows = {}, {}
    for label, (name, kw) in configs.items():
        t = time.perf_counter()
        _, res, rec = train_and_test(name, view, seed=args.seed, progress=False, retrain=True, **train, **kw)
        runs[label] = res
        rows[label] = {"valid AUC": rec["best_valid"], "test AUC": rec["metrics"]["auc"], "epochs": rec["epochs"],
                       "seconds": round(time.perf_counter() - t, 1)}
        print(f"{label:<30} valid AUC {rec['best_valid']:.4f}  test AUC {rec['metrics']['auc']:.4f}  "
              f"({rec['epochs']} epochs, {rows[label]['seconds']:.0f} s)", flush=True)
    diffs = {}
    for a, b in PAIRS:
        d = paired_ctr_difference(runs[a].test_rows, runs[b].test_rows, "auc")
        diffs[f"{a} − {b}"] = {k: d[k] for k in ("diff", "low", "high")}
        print(f"{a} − {b}: {d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]")
    save_json({"seed": args.seed, "smoke": args.smoke, "pool_rows": len(pool.rows), "runs": rows,
               "paired_test_auc": diffs, "date": time.strftime("%Y-%m-%d")}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
