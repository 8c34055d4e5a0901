"""Item encoding sharded across processes (and GPUs) with ``accelerate``, for catalogues too large for one.

    accelerate launch --multi_gpu --num_processes 8 -m llmrec_lite encode --dataset amazon-scientific --encoder Qwen/Qwen2-1.5B
    accelerate launch --multi_gpu --num_processes 2 -m llmrec_lite encode --dataset ml-1m   # CPU only: 2 processes
    torchrun --nproc_per_node 2 -m llmrec_lite encode --dataset ml-1m                       # the same, without accelerate

(``--multi_gpu`` starts the processes with torchrun; on a machine without CUDA they join over gloo on the CPU.
accelerate's ``--cpu`` flag instead wants MPI for more than one process.)

Process r encodes texts r, r + n, r + 2n, ... on its own device; the shards are gathered on the main process,
put back in catalogue order and written to the very cache file a one-process ``encode_items`` with the same
settings would write, so every model that reads item text afterwards finds it (a cache hit, no LM load).
Without ``accelerate launch`` it runs as one process.
"""
from __future__ import annotations

import numpy as np

from ..io import save_npy
from .encode import embedding_cache_file, encode_items


def encode_sharded(texts, encoder: str = "minilm", pooling: str = "mean", layer: int = -1, normalize: bool = True,
                   max_length: int = 128, batch_size: int = 32, dtype: str | None = None, cache: bool = True,
                   cache_dir=None, progress: bool = True) -> np.ndarray | None:
    """``encode_items`` split across the processes of an ``accelerate`` launch. Returns the full float32
    [len(texts), d] table on the main process (None on the others), and caches it there as ``encode_items`` would."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    import torch

    # a CPU-only launch (torchrun underneath, WORLD_SIZE > 1) is accelerate's MULTI_CPU, over gloo
    state = PartialState(cpu=not torch.cuda.is_available())
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("encode_sharded needs at least one text")
    device = str(state.device)
    path = embedding_cache_file(texts, encoder, pooling, layer, normalize, max_length, device, dtype, cache_dir)
    mine = list(range(state.process_index, len(texts), state.num_processes))
    part = encode_items([texts[i] for i in mine], encoder, pooling, layer, normalize=normalize, batch_size=batch_size,
                        max_length=max_length, device=device, dtype=dtype, cache=False,
                        progress=progress and state.is_main_process) if mine else None
    shards = gather_object([(mine, part)]) if state.num_processes > 1 else [(mine, part)]
    if not state.is_main_process:
        state.wait_for_everyone()
        return None
    width = next(p.shape[1] for _, p in shards if p is not None)
    table = np.empty((len(texts), width), dtype=np.float32)
    for idx, p in shards:
        if idx:
            table[idx] = p
    if cache:
        save_npy(table, path)
    state.wait_for_everyone()
    return table
