"""Molar, second pass: the paper's loss and item encoding against ours, and the alignment weight, on validation
(test is never read).

    python benchmarks/molar_validation.py                          # every row below (about 3 h on 2 CPU cores, alone)
    python benchmarks/molar_validation.py --only "lambda=0.3"      # some rows; rows already stored are kept
    python benchmarks/molar_validation.py --table                  # print the stored table

One change at a time from ``BASE``: the defaults of ``models/molar.py`` after the first pass (one pre-trained SmolLM2
layer, its learning rate 1e-3, tau 0.1, ``benchmarks/molar_sweep.py``) with the paper's symmetric alignment loss
(Eq. 4), lambda 0.1, base MIRM vectors (mean of layer 15), and the settings every row of the comparison shares:
DUEG and the teacher read the same 20-item window, patience 20, at most 400 epochs, seed 2020. The teacher (stage
"id", the project's SASRec-BCE on that window) is trained by the first row and loaded from the model store by the
others (it is the same run). Rows:

- lambda in {0.1, 0.3, 1}: the alignment weight, measured (the first pass argued it);
- "one-way loss": our first form, InfoNCE from the content side only;
- "paper pooling": MIRM reads the paper's instruction prompt and the hidden state at its last token ([Cur_Item]),
  last layer, instead of the mean of layer 15 over the attribute prompt;
- "fine-tuned MIRM": the item vectors after MIRM's LoRA fine-tune (``mirm_finetune``, 128 examples per task,
  the row's seed) instead of the base LM's.

Third pass, one change at a time from the defaults the second pass picked (``DEFAULT``: lambda 0.3), each row
compared with "default (lambda=0.3)", the same settings run beside them (on the same device):
- "warm-up + cosine (E)": the paper's schedule for the content stage, linear warm-up over 5% of E epochs, then a
  cosine decay to 0 at epoch E (``schedule="warmup-cosine"``);
- "[User] token": DUEG reads a learned [User] vector after the sequence and the user is its state (the paper's
  prompt), one target per window instead of one per position.

Fourth pass, the third pass's two rows that mattered, again on ml-100k (same seed, same shared settings): the
token's gain on amazon-scientific (short histories, about 7 items per user) was measured on one dataset only, and
ml-100k's users have long histories that give the per-position loss 20 targets per window:
- "default (lambda=0.3), ml-100k" and "[User] token, ml-100k".

Each row goes through ``experiment.train_and_validate``; it is written to the evidence store's ``molar_validation``
table as it finishes (a cut-off run keeps its rows) with the settings and the environment. Time it alone.
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

TABLE = "molar_validation"
SEED = 2020
DATASET = "amazon-scientific"
BASE = dict(layers=[0, 1], lm_lr=1e-3, tau=0.1, align_weight=0.1, align_loss="symmetric", mirm_pooling="mean",
            max_len=20)
TRAIN = dict(epochs=400, patience=20)
START = "lambda=0.1 (symmetric)"
DEFAULT = "default (lambda=0.3)"
SETTINGS = {  # label: the one change from BASE, in the order they run
    START: {},
    "lambda=0.3": {"align_weight": 0.3},
    "lambda=1": {"align_weight": 1.0},
    "one-way loss": {"align_loss": "one-way"},
    "paper pooling": {"mirm_pooling": "last"},
    "fine-tuned MIRM": {"mirm_finetune": True},
    DEFAULT: {"align_weight": 0.3},
    "warm-up + cosine (50)": {"align_weight": 0.3, "schedule": "warmup-cosine", "schedule_epochs": 50},
    "warm-up + cosine (100)": {"align_weight": 0.3, "schedule": "warmup-cosine", "schedule_epochs": 100},
    "warm-up + cosine (200)": {"align_weight": 0.3, "schedule": "warmup-cosine", "schedule_epochs": 200},
    "[User] token": {"align_weight": 0.3, "user_token": True},
    "default (lambda=0.3), ml-100k": {"align_weight": 0.3},
    "[User] token, ml-100k": {"align_weight": 0.3, "user_token": True},
}
DATASET_OF = {lab: "ml-100k" for lab in SETTINGS if lab.endswith(", ml-100k")}   # every other row: DATASET
FOURTH = list(DATASET_OF)
THIRD = [lab for lab in SETTINGS if list(SETTINGS).index(lab) >= list(SETTINGS).index(DEFAULT) and lab not in FOURTH]


def settings(label: str) -> dict:
    if label not in SETTINGS:
        raise SystemExit(f"unknown setting {label!r}; valid: {', '.join(SETTINGS)}")
    return BASE | SETTINGS[label]


def table(rows: list[dict]) -> str:
    from molar_sweep import table as sweep_table  # the same markdown, this sweep's rows

    second = sweep_table([r for r in rows if r["setting"] not in THIRD + FOURTH], SETTINGS, START)
    third = sweep_table([r for r in rows if r["setting"] in THIRD], SETTINGS, DEFAULT)
    out = second + "\n\nThird pass (vs start: vs the default row)\n\n" + third
    if any(r["setting"] in FOURTH for r in rows):
        out += ("\n\nFourth pass, ml-100k (vs start: vs its default row)\n\n"
                + sweep_table([r for r in rows if r["setting"] in FOURTH], SETTINGS, FOURTH[0]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", default=None, metavar="SETTING", help=f"some of: {', '.join(SETTINGS)}")
    ap.add_argument("--table", action="store_true", help="print the stored table and stop")
    args = ap.parse_args()
    rows = [r["row"] for r in evidence.rows(TABLE, missing_ok=True)]
    todo = [lab for lab in (args.only or list(SETTINGS))
            if not any(r["setting"] == lab and r["overrides"] == settings(lab) for r in rows)]
    if args.table or not todo:
        print(table(rows))
        return

    from llmrec_lite.data import leave_one_out, load_dataset
    from llmrec_lite.config import resolve_device
    from llmrec_lite.experiment import train_and_validate

    splits: dict = {}
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d"), "device": str(resolve_device("auto"))}
    for lab in todo:
        kw = settings(lab)
        dataset = DATASET_OF.get(lab, DATASET)
        if dataset not in splits:
            splits[dataset] = leave_one_out(load_dataset(dataset))
        t = time.perf_counter()
        _, _, rec = train_and_validate("molar", splits[dataset], seed=SEED, progress=False,
                                       **(kw | {"layers": tuple(kw["layers"])}), **TRAIN)
        content = rec["stages"][-1]
        row = {"setting": lab, "overrides": kw, "best_valid": rec["best_valid"], "best_epoch": content["best_epoch"],
               "epochs": content["epochs"], "seconds_per_epoch": content["train_seconds"] / max(content["epochs"], 1),
               "train_seconds": content["train_seconds"], "teacher": rec["stages"][0] if len(rec["stages"]) > 1 else None,
               "threads": torch.get_num_threads()}
        print(f"{lab:26s} valid NDCG@10 {row['best_valid']:.4f}  best epoch {row['best_epoch']:3d}  "
              f"{row['seconds_per_epoch']:.1f} s/epoch  {time.perf_counter() - t:.0f} s", flush=True)
        rows = [r for r in rows if r["setting"] != lab] + [row]
        evidence.write([evidence.table_row(TABLE, lab, row, f"python benchmarks/molar_validation.py --only '{lab}'",
                                           {"base": BASE | TRAIN | {"seed": SEED, "dataset": dataset}},
                                           env | {"threads": row["threads"],
                                                  "cpu_seconds": rec["environment"].get("cpu_seconds"),
                                                  "contended": rec["environment"].get("contended"),
                                                  "lm_dtype": rec["environment"].get("lm_dtype")})])
    print(table(rows))
    print(f"wrote {evidence.path()}")


if __name__ == "__main__":
    main()
