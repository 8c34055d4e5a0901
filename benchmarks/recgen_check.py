"""Are RecGen's Yes/No AUCs below 0.5 a label or token inversion? Three checks, each stored as it finishes.

    python benchmarks/recgen_check.py              # every check (about 25 min on 2 CPU cores, alone)
    python benchmarks/recgen_check.py --table      # print the stored rows

- "answers": the fine-tuning examples answer "Yes" exactly for the rows labelled 1 (no inversion in the data);
- "rec-only, its own 256 train rows": P(Yes) of the rec-only RecGen (SmolLM2 + LoRA on those rows, cached) on the
  rows it was fine-tuned on. A model that learned the task ranks its own training labels well above 0.5; one that
  learned only the answer format and the base rate gives P(Yes) near the share of Yes answers for every row;
- "rec-only, 1000 valid rows" and "base, 1000 valid rows": the AUC with a 5x larger sample than notebook 06's
  200 rows (its standard error about 0.02 instead of 0.04).

Rows go to the evidence store's ``recgen_yesno_check`` table (AUC, mean P(Yes) on liked and not-liked rows, rows,
seconds). Run it alone.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec_lite import evidence  # noqa: E402

TABLE = "recgen_yesno_check"
COMMAND = "python benchmarks/recgen_check.py"


def stored() -> dict:
    return {r["key"]: r["row"] for r in evidence.rows(TABLE, missing_ok=True)}


def scored(lm, names, rows) -> dict:
    from sklearn.metrics import roc_auc_score

    from llmrec_lite.models.llmcf_offline import rec_prompt, yes_probability

    t = time.perf_counter()
    p = yes_probability(lm, [rec_prompt(names, h, hl, i) for h, hl, i in
                             zip(rows["history"], rows["history_label"], rows["item"])])
    y = rows["label"].to_numpy()
    return {"auc": float(roc_auc_score(y, p)), "p_yes_liked": float(p[y == 1].mean()),
            "p_yes_not_liked": float(p[y == 0].mean()), "rows": int(len(y)), "seconds": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    done = stored()
    if not args.table:
        from llmrec_lite.data import ctr_view, load_dataset
        from llmrec_lite.models.llmcf_offline import item_names, recgen, recgen_examples
        from llmrec_lite.text.layers import load_decoder

        view = ctr_view(load_dataset("ml-100k", verbose=False))
        names = item_names(view.dataset)
        r = recgen(view, "smollm2", mix="rec", seed=0, progress=False, n_rec=256)
        # the 256 train rows recgen_examples draws (seed 0)
        train = view.part("train")
        own = train.iloc[np.random.default_rng(0).choice(len(train), 256, replace=False)]
        valid = view.part("valid")
        sample = valid.iloc[np.random.default_rng(1).choice(len(valid), 1000, replace=False)]
        checks = {
            "answers": lambda: {"yes_answers": sum(a == "Yes" for _, a in recgen_examples(view, r.tokenizer, 256, "rec", seed=0)),
                                "liked_rows": int(own["label"].sum()), "rows": len(own)},
            "rec-only, its own 256 train rows": lambda: scored((r.tokenizer, r.model), names, own),
            "rec-only, 1000 valid rows": lambda: scored((r.tokenizer, r.model), names, sample),
            "base, 1000 valid rows": lambda: scored(load_decoder("smollm2", fresh=False), names, sample),
        }
        for key, fn in checks.items():
            if key in done:
                continue
            done[key] = fn()
            print(key, done[key], flush=True)
            evidence.write([evidence.table_row(TABLE, key, done[key], COMMAND, {"recgen": "rec-only, 256 rows, seed 0"})])
    for key, row in done.items():
        print(f"{key:36s} " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
