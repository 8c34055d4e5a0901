"""What a decoder LLM's layers cost on this machine: the numbers Molar / BAHE / LLM-CF budget with.

    python benchmarks/lm_cost.py                       # SmolLM2, 2 / 8 / 30 layers, batch 8 x 128 tokens
    python benchmarks/lm_cost.py --layers 2 8 --reps 3 --threads 2

For each number of layers it times, on 1k tokens (batch x length), a forward pass under no_grad and a forward +
backward pass with the layers trainable (what fine-tuning the upper layers costs), over ``--reps`` repetitions
after one warm-up, and prints a markdown table; the evidence store's ``lm_cost`` table keeps the numbers with the thread
count and the machine. Run it alone: another torch process on the same cores distorts the times many-fold.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    from llmrec_lite.config import add_device_args, apply_device_args

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 8, 30])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    add_device_args(ap)
    args = ap.parse_args()

    import torch

    from llmrec_lite.text.layers import DecoderSlice, load_decoder

    device = apply_device_args(args)
    t = time.perf_counter()
    tok, lm = load_decoder(args.model, device, "float32", fresh=False)
    load_s = time.perf_counter() - t
    ntok = args.batch * args.length
    torch.manual_seed(0)
    ids = torch.randint(100, lm.config.vocab_size, (args.batch, args.length), device=device)
    mask = torch.ones_like(ids)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for n in args.layers:
        sl = DecoderSlice(lm, 0, n, trainable=True)
        x = sl.embed(ids).detach()

        def fwd():
            with torch.no_grad():
                sl(x, mask)

        def fwd_bwd():
            sl.zero_grad(set_to_none=True)
            sl(x, mask).pow(2).mean().backward()

        out = {"layers": n}
        for name, fn in (("forward", fwd), ("forward_backward", fwd_bwd)):
            fn()  # warm-up
            sync()
            times = []
            for _ in range(args.reps):
                t = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - t)
            out[f"{name}_s_per_1k_tokens"] = statistics.median(times) * 1000 / ntok
        rows.append(out)
        print(f"{n:3d} layers: forward {out['forward_s_per_1k_tokens']:.3f} s / 1k tokens, "
              f"forward+backward {out['forward_backward_s_per_1k_tokens']:.3f} s / 1k tokens", flush=True)
        for p in sl.parameters():
            p.grad = None
    env = {"model": args.model, "hidden": lm.config.hidden_size, "total_layers": lm.config.num_hidden_layers,
           "batch": args.batch, "length": args.length, "reps": args.reps, "device": str(device),
           "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
           "machine": platform.machine(), "load_seconds": round(load_s, 1), "date": time.strftime("%Y-%m-%d")}
    print(f"\n{args.model} ({env['total_layers']} layers, hidden {env['hidden']}), batch {args.batch} x {args.length} "
          f"tokens, {env['threads']} threads on {env['device']}; load {load_s:.0f} s\n")
    print("| layers | forward, s per 1k tokens | forward + backward, s per 1k tokens |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['layers']} | {r['forward_s_per_1k_tokens']:.3f} | {r['forward_backward_s_per_1k_tokens']:.3f} |")
    from llmrec_lite import evidence

    keep = ("model", "hidden", "total_layers", "batch", "length", "reps")
    evidence.write([evidence.table_row("lm_cost", r["layers"], r, "python benchmarks/lm_cost.py " + " ".join(
        f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items() if v is not None),
        {k: env[k] for k in keep}, env) for r in rows])
    print(f"\nwrote {evidence.path()}")


if __name__ == "__main__":
    main()
