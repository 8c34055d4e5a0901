"""MIRM, Molar's item model (models/molar.py): each item's structured attributes as the prompt a decoder LM reads,
the paper's LoRA fine-tuning tasks on them, and the item vectors (ours: the mean of a middle layer; the paper's: the
hidden state at the end of an instruction prompt, the [Cur_Item] position)."""
from __future__ import annotations

import numpy as np

from ..data.split import Split
from .prompts import attribute_prompt

FIELDS = ("all", "title", "no-description")


def item_attributes(dataset, fields: str = "all") -> list[dict]:
    """Each item's attributes for the MIRM prompt: "all" (every structured attribute the dataset has),
    "title", or "no-description" (the prompt of the attributes -> description task)."""
    if fields not in FIELDS:
        raise ValueError(f"unknown fields {fields!r}; valid: {list(FIELDS)}")
    it = dataset.items
    col = lambda name: it[name].tolist() if name in it else [None] * len(it)
    path = "categories" in it  # Amazon: genres = the category path below the root; MovieLens: genres
    rows = []
    for title, year, brand, genres, desc in zip(col("title"), col("year"), col("brand"), col("genres"), col("description")):
        a = {"Title": title}
        if fields != "title":
            a |= {"Year": year, "Brand": brand, **({"Category": genres} if path else {"Genres": ", ".join(genres or [])})}
            if fields == "all":
                a["Description"] = desc
        rows.append(a)
    return rows


def mirm_examples(split: Split, n_per_task: int = 128, history: int = 5, seed: int = 0) -> list[tuple[str, str]]:
    """(prompt, answer) pairs for MIRM's LoRA fine-tune, from train data only: (a) attributes -> the item's
    description, for items that have one; (b) a user's last ``history`` train items -> the next train item."""
    ds, rng = split.dataset, np.random.default_rng(seed)
    out = []
    if "description" in ds.items:
        desc = [" ".join(str(d).split()) for d in ds.items["description"]]
        attrs = item_attributes(ds, "no-description")
        have = np.flatnonzero([len(d) > 0 for d in desc])
        for i in rng.choice(have, min(n_per_task, len(have)), replace=False):
            out.append((attribute_prompt(attrs[i]) + "\nDescription:", " " + desc[i][:300]))
    titles = ds.items["title"].tolist()
    hist = [h for h in split.histories("train") if len(h) >= 2]
    for j in rng.choice(len(hist), min(n_per_task, len(hist)), replace=False):
        h = hist[j]
        end = int(rng.integers(1, len(h)))
        lines = "\n".join(f"- {titles[i]}" for i in h[max(0, end - history):end])
        out.append((f"A user's items, in order:\n{lines}\nTheir next item:", " " + titles[h[end]]))
    return out


def mirm_finetune(split: Split, lm: str = "smollm2", n_per_task: int = 128, seed: int = 0, progress: bool = True,
                  **lora):
    """MIRM's LoRA fine-tune (``text.finetune``, cached) on ``mirm_examples(split, n_per_task, seed=seed)``."""
    from ..text.finetune import finetune

    return finetune(lm, mirm_examples(split, n_per_task, seed=seed), seed=seed, progress=progress, **lora)


MIRM_POOLINGS = ("mean", "last")
CUR_ITEM = "[Cur_Item]"


def paper_prompts(texts: list[str], tokenizer, max_length: int = 64) -> list[str]:
    """MIRM's instruction prompt (Molar Fig. 2, without the image): "Compress the text into embedding. Item
    information: <attributes>. [Cur_Item]", the attributes cut (in tokens) so that the whole prompt fits
    ``max_length`` and always ends in [Cur_Item] (plain text here: a new special token would start untrained)."""
    head, tail = "Compress the text into embedding. Item information: ", f". {CUR_ITEM}"
    room = max_length - len(tokenizer(head + tail)["input_ids"]) - 1
    if room < 8:
        raise ValueError(f"max_length={max_length} leaves no room for the attributes after the instruction; use >= 40")
    cut = [tokenizer.decode(tokenizer(t, add_special_tokens=False)["input_ids"][:room]) for t in texts]
    return [head + " ".join(c.split()) + tail for c in cut]


def mirm_vectors(split: Split, lm: str = "smollm2", fields: str = "all", finetuned=None, pooling: str = "mean",
                 layer: int | None = None, max_length: int = 64, device="auto", progress: bool = True) -> np.ndarray:
    """MIRM's item vectors [n_items, H] (raw: ``text_features`` centres them): ``lm`` reads each item's
    attribute prompt; ``finetuned``: the ``mirm_finetune`` result of ``lm`` to read with instead.
    ``pooling``: "mean" (mean over the attribute prompt's tokens at ``layer``, default 15) or "last" (the paper's:
    the hidden state at the end of the instruction prompt, the [Cur_Item] position, at ``layer``, default the last)."""
    from ..text import encode_items
    from ..text.layers import load_decoder
    from ..text.models import resolve

    if pooling not in MIRM_POOLINGS:
        raise ValueError(f"unknown MIRM pooling {pooling!r}; valid: {list(MIRM_POOLINGS)}")
    layer = (15 if pooling == "mean" else -1) if layer is None else layer
    texts = [attribute_prompt(a) for a in item_attributes(split.dataset, fields)]
    if pooling == "last":
        tok = finetuned.tokenizer if finetuned is not None else load_decoder(lm, device=device, fresh=False)[0]
        texts = paper_prompts(texts, tok, max_length)
    kw = dict(pooling=pooling, layer=layer, max_length=max_length, device=device, progress=progress)
    if finetuned is None:
        return encode_items(texts, lm, **kw)
    if not finetuned.path:
        raise ValueError("mirm_vectors: the fine-tune has no cached adapter to name its vectors by; run mirm_finetune with cache=True")
    identity = f"{resolve(lm).identity}+{str(finetuned.path).rsplit('/', 1)[-1]}"
    return encode_items(texts, lm=(finetuned.tokenizer, finetuned.model), identity=identity, **kw)


