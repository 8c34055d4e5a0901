"""Molar's choices the paper leaves open, chosen on amazon-scientific validation (test is never read).

    python benchmarks/molar_sweep.py                       # every setting below (about 75 min on 2 CPU cores, alone)
    python benchmarks/molar_sweep.py --only tau=0.5        # some settings; the others already saved are kept
    python benchmarks/molar_sweep.py --table               # print the saved table

One factor at a time from notebook 04's first setting (``BASE``): SmolLM2's fine-tuned MIRM vectors (layer 15, 64
prompt tokens, 128 fine-tuning examples per task, cached), DUEG = pre-trained layers 0-1 (two), lambda 0.1, tau 0.1,
the LM layers' learning rate 1e-4, 100 epochs with patience 5 on validation NDCG@10, seed 2020, aligned to the
project's SASRec (BCE, seed 2020; trained first, about 14 min). The model's defaults take the changes validation
preferred (one layer, learning rate 1e-3); notebook 04 trains that combination on the same split, teacher and
seed and prints its validation NDCG@10 beside these rows. lambda: notebook 04's explorer re-trains at lambda = 1.
Every run goes through ``experiment.train_and_validate``, which fits exactly what ``train_and_test`` fits and
never evaluates test. Writes the evidence store's ``molar_sweep`` table (benchmarks/evidence.jsonl; each row {setting,
overrides, best_valid, best_epoch, epochs, seconds_per_epoch, train_seconds} with the base settings, the teacher and
the environment); a row already stored for the same setting and overrides is kept, not trained again. Time it alone: a second torch process on
2 cores slows both 10-40x.
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

from llmrec_lite import evidence  # noqa: E402

SEED = 2020
MIRM = dict(layer=15, max_length=64)
N_FINETUNE = 128
BASE = dict(layers=[0, 2], align_weight=0.1, tau=0.1, lm_lr=1e-4)  # notebook 04's first setting: where the sweep starts
TRAIN = dict(epochs=100, patience=5)
START = "start (2 LM layers)"
SETTINGS = {  # label: the one change from BASE (in the order they run: a cut-off sweep keeps the finished rows)
    START: {},
    "1 LM layer": {"layers": [0, 1]},
    "4 LM layers": {"layers": [0, 4]},
    "tau=0.05": {"tau": 0.05},
    "tau=0.5": {"tau": 0.5},
    "lm_lr=1e-5": {"lm_lr": 1e-5},
    "lm_lr=1e-3": {"lm_lr": 1e-3},
}


def settings(label: str) -> dict:
    """The full Molar settings of one sweep row (BASE with the row's change)."""
    if label not in SETTINGS:
        raise SystemExit(f"unknown setting {label!r}; valid: {', '.join(SETTINGS)}")
    return BASE | SETTINGS[label]


def table(rows: list[dict], settings: dict | None = None, start: str | None = None) -> str:
    """Markdown: each setting's validation NDCG@10 and its difference from the starting setting (``settings`` /
    ``start``: another sweep's, e.g. molar_validation.py's)."""
    order, first = list(settings or SETTINGS), start or START
    base = next((r["best_valid"] for r in rows if r["setting"] == first), None)
    out = ["| setting | valid NDCG@10 | vs start | best epoch | epochs | s/epoch |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: order.index(r["setting"]) if r["setting"] in order else 99):
        diff = "" if base is None or r["setting"] == first else f"{r['best_valid'] - base:+.4f}"
        out.append(f"| {r['setting']} | {r['best_valid']:.4f} | {diff} | {r['best_epoch']} | {r['epochs']} | "
                   f"{r['seconds_per_epoch']:.1f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", default=None, metavar="SETTING", help=f"some of: {', '.join(SETTINGS)}")
    ap.add_argument("--table", action="store_true", help="print the saved table and stop")
    args = ap.parse_args()
    saved = {"rows": [r["row"] for r in evidence.rows("molar_sweep", missing_ok=True)]}
    if args.table:
        print(table(saved["rows"]))
        return
    labels = args.only or list(SETTINGS)
    todo = [lab for lab in labels if not any(r["setting"] == lab and r["overrides"] == settings(lab)
                                             for r in saved["rows"])]
    if not todo:
        print(table(saved["rows"]))
        return

    from llmrec_lite.data import leave_one_out, load_dataset
    from llmrec_lite.experiment import train_and_validate
    from llmrec_lite.models.molar import mirm_finetune, mirm_vectors

    split = leave_one_out(load_dataset("amazon-scientific"))
    ft = mirm_finetune(split, "smollm2", N_FINETUNE, seed=SEED)
    z = mirm_vectors(split, "smollm2", fields="all", finetuned=ft, progress=False, **MIRM)
    t = time.perf_counter()
    sas, _, rec = train_and_validate("sasrec", split, seed=SEED, progress=False, loss_type="bce")
    teacher = {"model": "sasrec-bce", "best_valid": rec["best_valid"], "best_epoch": rec["best_epoch"]}
    print(f"teacher SASRec-BCE: valid NDCG@10 {rec['best_valid']:.4f}, best epoch {rec['best_epoch']}, "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    base = {"base": BASE | TRAIN | {"seed": SEED, "mirm": MIRM | {"n_finetune": N_FINETUNE}}, "teacher": teacher}
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d")}
    for lab in todo:
        kw = settings(lab)
        t = time.perf_counter()
        _, _, rec = train_and_validate("molar", split, seed=SEED, progress=False, item_z=z, id_model=sas,
                                       **(kw | {"layers": tuple(kw["layers"])}), **TRAIN)
        row = {"setting": lab, "overrides": kw, "best_valid": rec["best_valid"], "best_epoch": rec["best_epoch"],
               "epochs": rec["epochs"], "seconds_per_epoch": rec["seconds_per_epoch"],
               "train_seconds": rec["train_seconds"], "threads": torch.get_num_threads()}
        print(f"{lab:26s} valid NDCG@10 {row['best_valid']:.4f}  best epoch {row['best_epoch']:3d}  "
              f"{row['seconds_per_epoch']:.1f} s/epoch  {time.perf_counter() - t:.0f} s", flush=True)
        saved["rows"] = [r for r in saved["rows"] if r["setting"] != lab] + [row]
        evidence.write([evidence.table_row("molar_sweep", lab, row, f"python benchmarks/molar_sweep.py --only '{lab}'",
                                           base, env | {"threads": row["threads"], "cpu_seconds": rec["environment"].get("cpu_seconds"),
                                                        "contended": rec["environment"].get("contended")})])
    print(table(saved["rows"]))  # each finished row is stored as it ends: a cut-off sweep keeps them
    print(f"wrote {evidence.path()}")


if __name__ == "__main__":
    main()
