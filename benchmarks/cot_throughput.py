"""LLM-CF's CoT generation: tokens per second on this machine, before and after each speed-up, and whether the
faster settings write the same text.

    python benchmarks/cot_throughput.py                 # every setting below on 32 pool prompts (about 15 min, 2 cores)
    python benchmarks/cot_throughput.py --rows 16       # fewer prompts
    python benchmarks/cot_throughput.py --table         # print the stored table

The prompts are the first ``--rows`` of the seeded 10% pool sample of ml-100k's CTR view (``llmcf_offline``), the
model RecGen (SmolLM2 + its cached LoRA adapter), greedy decoding, ``--tokens`` new tokens. Settings, in order:

- "before": the LoRA adapter applied on the fly (peft), batches of 8, float32 (what built the first pool);
- "merged": the adapter merged into the weights (``merge_and_unload``: the same function, no adapter matmuls);
- "merged, batch 16" / "merged, batch 32": more rows per forward pass (left padding);
- "merged, batch 32, bf16": bfloat16 weights (this CPU has AVX-512 BF16; bf16 rounds, so its text may differ).

Per setting: wall seconds, generated tokens (up to the end of each row's text), tokens per second, seconds per
row, the speed-up over "before", and the share of rows whose text equals "before"'s exactly. The rows go to the
evidence store's ``cot_throughput`` table with the environment. Time it alone: two torch processes on 2 cores slow
each other 10-40x.
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec_lite import evidence  # noqa: E402

TABLE = "cot_throughput"
SETTINGS = [("before", False, 8, "float32"), ("merged", True, 8, "float32"), ("merged, batch 16", True, 16, "float32"),
            ("merged, batch 32", True, 32, "float32"), ("merged, batch 32, bf16", True, 32, "bfloat16")]


def run_setting(model, tok, prompts: list[str], batch: int, max_new_tokens: int) -> tuple[list[str], int, float]:
    """(texts, generated tokens, wall seconds) of greedy generation over ``prompts`` in batches of ``batch``."""
    from llmrec_lite.models.llmcf_offline import SYSTEM
    from llmrec_lite.text.generate import chat_inputs

    tok.padding_side = "left"
    texts, n_tokens = [], 0
    t = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(prompts), batch):
            enc = tok(chat_inputs(tok, prompts[s:s + batch], SYSTEM), return_tensors="pt", padding=True,
                      add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            n_tokens += int((new != tok.pad_token_id).sum())
            texts += [x.strip() for x in tok.batch_decode(new, skip_special_tokens=True)]
    return texts, n_tokens, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per row (the official setting: 256)")
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    if args.table:
        print(evidence.frame(TABLE).to_string())
        return

    from llmrec_lite.data import ctr_view, load_dataset
    from llmrec_lite.models.llmcf_offline import cot_prompt, item_names, recgen, sample_rows

    view = ctr_view(load_dataset("ml-100k"))
    rows = sample_rows(view, len(view.part("train")) // 10, seed=0).iloc[:args.rows]
    names = item_names(view.dataset)
    prompts = [cot_prompt(names, h, hl, i, y) for h, hl, i, y in
               zip(rows["history"], rows["history_label"], rows["item"], rows["label"])]
    rg = recgen(view, "smollm2", mix="mixed", seed=0, progress=False)
    merged = copy.deepcopy(rg.model).merge_and_unload().eval()
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
           "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")}
    out, base = [], None
    for label, merge, batch, dtype in SETTINGS:
        model = merged if merge else rg.model
        if dtype != "float32":  # a copy: the float32 weights stay as they are (a GGUF-read model has no .float())
            model = copy.deepcopy(model).to(getattr(torch, dtype))
        texts, n, sec = run_setting(model, rg.tokenizer, prompts, batch, args.tokens)
        base = base or {"texts": texts, "tps": n / sec}
        row = {"setting": label, "rows": len(prompts), "new_tokens": args.tokens, "batch": batch, "dtype": dtype,
               "merged": merge, "seconds": sec, "tokens": n, "tokens_per_s": n / sec, "s_per_row": sec / len(prompts),
               "speed_up": (n / sec) / base["tps"],
               "same_text_as_before": sum(a == b for a, b in zip(texts, base["texts"])) / len(texts)}
        out.append(row)
        print(f"{label:24s} {row['tokens_per_s']:6.1f} tok/s  {row['s_per_row']:5.2f} s/row  x{row['speed_up']:.2f}  "
              f"same text {row['same_text_as_before']:.0%}", flush=True)
    evidence.write([evidence.table_row(TABLE, r["setting"], r, f"python benchmarks/cot_throughput.py --rows {args.rows} "
                                                              f"--tokens {args.tokens}", {}, env) for r in out],
                   replace_table=TABLE)
    print(f"wrote {evidence.path()}")


if __name__ == "__main__":
    main()
