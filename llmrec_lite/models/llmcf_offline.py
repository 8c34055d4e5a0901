"""LLM-CF's offline half (Sun et al., CIKM 2024; official code Jeryi-Sun/LLM-CF, ``LLaMA-Factory/``,
``generate/``): RecGen, chain-of-thought generation, CoT embeddings and the pool the online ICT module
retrieves from. Every LLM step is cached by content (the LoRA adapter, the generations, the embeddings), so a
second run makes no LLM call.

    rg = recgen(view, "smollm2", mix="mixed")                        # LoRA fine-tune, cached adapter
    pool = build_pool(view, n=400, lm=(rg.tokenizer, rg.model), identity=recgen_identity(rg))
    pool = committed_pool(view)                                       # the committed 10% pool, no LLM call
    pool.rows                                                         # user, item, label, history, prompt, cot

RecGen (official: Llama-2-7b-chat fully fine-tuned on the Amazon CTR prompts mixed with Alpaca-GPT4 and LIMA,
so that it keeps its general ability): here SmolLM2 + LoRA (``text.finetune``) on "will the user like the
candidate? Yes / No" prompts built from TRAIN rows only, in the model's chat format, mixed ("mixed") or not
("rec") with the project's hand-written general instructions (``text.general_instructions``; Alpaca and LIMA
cannot be downloaded here). ``general_ability`` / ``rec_ability`` measure what the fine-tune keeps and learns.

CoT (official ``generate/llama2_generate.py``): the LLM is told the user's history, the target item and the
user's TRUE decision, and explains it step by step: summarise the taste, describe the item, say how they
match, reflect on the user's wish for variety (the official prompt's four points). Official: beam search with
sampling, 3 candidates scored by a heuristic, 256 new tokens; here greedy, ``max_new_tokens``, one candidate.
``rows_path``: the pool's generations kept one JSONL line per row (``text.generate.generate_rows``): a cut-off run
keeps every finished row, the next generates only the rest, in a seeded order, and the pool is the finished rows
(any prefix of the work is a random sample of the chosen rows). Embedded with MiniLM (official: a BGE model), unit vectors.
The pool is a seeded uniform sample of the CTR view's train rows (official: 10% of the training data). On ml-100k
that is 8036 rows (7904 distinct prompts); the committed generations (``benchmarks/cot_pool.py``, resumable) cover
all of them, and ``committed_pool`` keeps the rows that have their CoT (all, unless a prompt or setting changes).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..text.cache import cache_key, cache_path
from ..text.general_instructions import GENERAL_EVAL, GENERAL_TRAIN, keyword_hit

SYSTEM = "You are a consumer-behaviour analyst for a movie website."
MIXES = ("mixed", "rec")
# the committed pool: CoTs for 10% of ml-100k's CTR train rows (``benchmarks/cot_pool.py`` writes and resumes it)
ARTEFACTS = Path(__file__).resolve().parents[2] / "artefacts" / "llmcf"
POOL_DATASET, POOL_FILE, POOL_TOKENS, POOL_NO_REPEAT = "ml-100k", "ml-100k-cot-pool.jsonl.gz", 256, 4
POOL_META = "ml-100k-cot-pool.json"  # how the committed pool was made: the settings its keys hash


def item_names(dataset) -> list[str]:
    """A short name per item for prompts: 'Toy Story (1995)' (title, and year when the data has one)."""
    items = dataset.items
    years = items["year"] if "year" in items else [None] * len(items)
    return [f"{t} ({y})" if y is not None and str(y) not in ("", "<NA>", "nan") else str(t)
            for t, y in zip(items["title"], years)]


def history_lines(names, history, history_label, max_items: int = 10) -> str:
    """The last ``max_items`` behaviours, oldest first, one '- name (liked | not liked)' line each."""
    pairs = list(zip(history, history_label))[-max_items:]
    return "\n".join(f"- {names[i]} ({'liked' if l == 1 else 'not liked'})" for i, l in pairs) or "- (none yet)"


def rec_prompt(names, history, history_label, item, max_items: int = 10) -> str:
    return (f"A user rated these movies, oldest first:\n{history_lines(names, history, history_label, max_items)}\n"
            f"Candidate movie: {names[item]}.\nWill the user like the candidate movie? Answer Yes or No.")


def cot_prompt(names, history, history_label, item, label, max_items: int = 10) -> str:
    decision = "liked" if label == 1 else "did not like"
    return (f"A user rated these movies, oldest first:\n{history_lines(names, history, history_label, max_items)}\n"
            f"Target movie: {names[item]}.\nThe user's decision: the user {decision} the target movie.\n"
            "Explain the decision step by step: 1. summarise the user's taste from the history; "
            "2. describe the target movie; 3. say how well the movie matches that taste; "
            "4. reflect on whether the user may want variety, a movie unlike the usual ones.")


def chat(tok, prompts) -> list[str]:
    from ..text.generate import chat_inputs

    return chat_inputs(tok, prompts, SYSTEM)


def recgen_examples(view, tok, n_rec: int = 256, mix: str = "mixed", general_share: float = 0.25,
                    seed: int = 0) -> list[tuple[str, str]]:
    """(chat-formatted prompt, answer) pairs: ``n_rec`` random train rows as Yes / No questions, plus for
    "mixed" the 32 general instructions repeated to about ``general_share`` of the mix; shuffled."""
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; valid: {list(MIXES)}")
    rng = np.random.default_rng(seed)
    train = view.part("train")
    rows = train.iloc[rng.choice(len(train), min(n_rec, len(train)), replace=False)]
    names = item_names(view.dataset)
    prompts = [rec_prompt(names, h, hl, i) for h, hl, i in zip(rows["history"], rows["history_label"], rows["item"])]
    out = list(zip(chat(tok, prompts), ["Yes" if y == 1 else "No" for y in rows["label"]]))
    if mix == "mixed":
        reps = max(1, round(general_share / (1 - general_share) * len(out) / len(GENERAL_TRAIN)))
        out += list(zip(chat(tok, [q for q, _, _ in GENERAL_TRAIN]), [a for _, a, _ in GENERAL_TRAIN])) * reps
    return [out[i] for i in rng.permutation(len(out))]


def recgen(view, lm="smollm2", n_rec: int = 256, mix: str = "mixed", general_share: float = 0.25, seed: int = 0,
           identity: str | None = None, **finetune_kw):
    """RecGen: ``text.finetune`` (LoRA, cached) on ``recgen_examples``. Returns its ``FinetuneResult``."""
    from ..text.finetune import finetune
    from ..text.layers import load_decoder

    tok = load_decoder(lm, fresh=False)[0] if isinstance(lm, str) else lm[0]
    examples = recgen_examples(view, tok, n_rec, mix, general_share, seed)
    return finetune(lm, examples, seed=seed, identity=identity, **finetune_kw)


def recgen_identity(rg) -> str:
    """What RecGen's generations are keyed on: its adapter folder's name, which is the hash of the base LM's identity,
    the fine-tune's examples and settings (never the folder's location, so a clone elsewhere finds the same keys)."""
    from pathlib import Path

    if not rg.path:
        raise ValueError("this RecGen was not cached (cache=False), so it has no identity to key generations on")
    return "recgen:" + Path(rg.path).name


@torch.no_grad()
def yes_probability(lm, prompts, batch_size: int = 8) -> np.ndarray:
    """P(Yes) / (P(Yes) + P(No)) for the first answer token of each (chat-formatted) rec prompt."""
    tok, model = lm
    yes, no = (tok(w, add_special_tokens=False)["input_ids"][0] for w in ("Yes", "No"))
    tok.padding_side = "left"
    out = []
    for s in range(0, len(prompts), batch_size):
        enc = tok(chat(tok, prompts[s:s + batch_size]), return_tensors="pt", padding=True, add_special_tokens=False)
        logits = model(**enc.to(model.device)).logits[:, -1, [yes, no]].float()
        out.append(torch.softmax(logits, -1)[:, 0].cpu().numpy())
    return np.concatenate(out)


def rec_ability(lm, view, n: int = 200, seed: int = 0) -> dict:
    """Does the model say Yes more to held-out positives than to negatives? On ``n`` VALID rows: the AUC of
    P(Yes), and its mean on positives and on negatives."""
    from sklearn.metrics import roc_auc_score

    valid = view.part("valid")
    rows = valid.iloc[np.random.default_rng(seed).choice(len(valid), min(n, len(valid)), replace=False)]
    names = item_names(view.dataset)
    p = yes_probability(lm, [rec_prompt(names, h, hl, i) for h, hl, i in
                             zip(rows["history"], rows["history_label"], rows["item"])])
    y = rows["label"].to_numpy()
    return {"auc": float(roc_auc_score(y, p)), "p_yes_positives": float(p[y == 1].mean()),
            "p_yes_negatives": float(p[y == 0].mean()), "rows": len(y)}


@torch.no_grad()
def general_ability(lm, max_new_tokens: int = 24) -> dict:
    """On the 16 held-out general instructions: perplexity of the reference answers (lower = closer to
    fluent general answers) and the share of greedy answers that contain the right keywords."""
    from ..text.finetune import answer_labels
    from ..text.generate import generate

    tok, model = lm
    qs = [q for q, _, _ in GENERAL_EVAL]
    enc = answer_labels(tok, chat(tok, qs), [a for _, a, _ in GENERAL_EVAL], 256)
    logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.float()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), enc["labels"][:, 1:].flatten(), ignore_index=-100)
    answers = generate(qs, lm=lm, system=SYSTEM, max_new_tokens=max_new_tokens, cache=False, progress=False)
    hits = [keyword_hit(a, k) for a, (_, _, k) in zip(answers, GENERAL_EVAL)]
    return {"perplexity": float(torch.exp(nll)), "keyword_accuracy": float(np.mean(hits)), "answers": answers}


@dataclass
class CoTPool:
    """The in-context CoT dataset: ``rows`` (user, item, label, history, history_label, prompt, cot) and
    ``cot_z`` [P, d] (unit vectors of the cot texts); ``path``: its readable JSONL copy, if written."""
    rows: pd.DataFrame
    cot_z: np.ndarray
    path: str | None = None

    def __post_init__(self):
        if len(self.rows) != len(self.cot_z):
            raise ValueError(f"CoTPool: {len(self.rows)} rows but {len(self.cot_z)} CoT vectors")
        for y in (0, 1):
            if (self.rows["label"] == y).sum() < 1:
                raise ValueError(f"CoTPool: no row with label {y}; sample more rows")

    def __repr__(self) -> str:
        return f"CoTPool({len(self.rows)} rows, {int(self.rows['label'].sum())} positive, path={self.path!r})"

    @property
    def has_cot(self) -> bool:
        """False for a ``feature_pool`` (no reasoning: usable with ``cot=False`` only)."""
        return bool(np.abs(self.cot_z).sum() > 0)

    def arrays(self, max_history: int) -> dict[str, np.ndarray]:
        """user, item, label [P] (int); hist [P, max_history] (ids + 1, left-padded) as a CTR batch has them."""
        from ..data.split import ctr_arrays

        a = ctr_arrays(self.rows, max_history)
        return {"user": a["user"], "item": a["item"], "label": a["label"].astype(np.int64), "hist": a["hist"]}


def sample_rows(view, n: int, seed: int = 0) -> pd.DataFrame:
    """A seeded uniform sample of ``n`` train rows of the CTR view (all of them when fewer)."""
    train = view.part("train")
    keep = np.sort(np.random.default_rng(seed).choice(len(train), min(n, len(train)), replace=False))
    return train.iloc[keep].reset_index(drop=True)


def build_pool(view, n: int = 400, lm="smollm2", identity: str | None = None, max_new_tokens: int = 64,
               batch_size: int = 8, seed: int = 0, embedder: str = "minilm", cache: bool = True, cache_dir=None,
               progress: bool = True, rows_path=None, limit: int | None = None) -> CoTPool:
    """Generate a CoT for ``n`` sampled train rows with ``lm`` (a name, or a (tokenizer, model) pair named
    by ``identity``, e.g. RecGen's adapter path), embed it, and write the pool as JSONL (one row per line:
    the row, its prompt and its CoT) beside the cached generations."""
    from ..io import atomic_path
    from ..text import encode_items, generate

    rows = sample_rows(view, n, seed)
    names = item_names(view.dataset)
    rows["prompt"] = [cot_prompt(names, h, hl, i, y) for h, hl, i, y in
                      zip(rows["history"], rows["history_label"], rows["item"], rows["label"])]
    kw = dict(model=lm) if isinstance(lm, str) else dict(lm=lm, identity=identity)
    if rows_path is not None:  # resumable, one line per finished row; the pool is what is finished
        from ..text.generate import generate_rows

        extra = [{"user": int(u), "item": int(i), "label": int(y)} for u, i, y in zip(rows["user"], rows["item"], rows["label"])]
        rows["cot"] = generate_rows(list(rows["prompt"]), rows_path, system=SYSTEM, max_new_tokens=max_new_tokens,
                                    batch_size=batch_size, seed=seed, limit=limit, progress=progress, extra=extra, **kw)
        rows = rows[rows["cot"].notna()].reset_index(drop=True)
    else:
        rows["cot"] = generate(list(rows["prompt"]), system=SYSTEM, max_new_tokens=max_new_tokens,
                               batch_size=batch_size, cache=cache, cache_dir=cache_dir, progress=progress, **kw)
    texts = [c if c.strip() else "(empty)" for c in rows["cot"]]
    cot_z = encode_items(texts, embedder, cache=cache, cache_dir=cache_dir, progress=False)
    path = None
    if cache:
        key = cache_key(identity=identity or lm, n=n, seed=seed, max_new_tokens=max_new_tokens,
                        prompts=list(rows["prompt"]), cots=list(rows["cot"]))
        path = cache_path("llmcf", "pool", key, ".jsonl", cache_dir)
        lines = [json.dumps({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in r.items()}, ensure_ascii=False)
                 for r in rows[["user", "item", "label", "history", "history_label", "prompt", "cot"]].to_dict("records")]
        with atomic_path(path) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        path = os.fspath(path)
    return CoTPool(rows, cot_z.astype(np.float32), path)


def feature_pool(view, n: int, seed: int = 0) -> CoTPool:
    """A pool of ``n`` sampled train rows WITHOUT reasoning (no LLM call; for ``cot=False`` models only): what
    retrieval can find when the pool is as large as the paper's 10% of the train rows, which CoT generation on a
    CPU cannot afford."""
    rows = sample_rows(view, n, seed)
    rows["cot"] = ""
    return CoTPool(rows, np.zeros((len(rows), 1), np.float32))


def committed_pool(view, embedder: str = "minilm", progress: bool = True, limit: int | None = None) -> CoTPool:
    """The committed CoT pool (``artefacts/llmcf/``, written by ``benchmarks/cot_pool.py``): the CoTs of a 10% sample
    of ``view``'s train rows, no LLM call. Each row's CoT is found by its key (its exact prompt rebuilt here, with
    RecGen's identity and the decoding settings the pool's metadata names), so a changed prompt or setting finds no
    stale text; embedded with ``embedder`` (cached). ``limit``: the first that many rows only (a quick look)."""
    from ..text import encode_items
    from ..text.generate import read_rows, row_key

    meta_path, pool_path = ARTEFACTS / POOL_META, ARTEFACTS / POOL_FILE
    if not (meta_path.is_file() and pool_path.is_file()):
        raise FileNotFoundError(f"no committed CoT pool in {ARTEFACTS}: run `python benchmarks/cot_pool.py` "
                                f"(hours on a CPU, minutes on a GPU), then `--compress`")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if view.dataset.name != meta["dataset"]:
        raise ValueError(f"the committed CoT pool is {meta['dataset']}'s, not {view.dataset.name}'s; build one with "
                         f"build_pool(view, rows_path=...)")
    rows = sample_rows(view, meta["n"], meta["seed"])
    names = item_names(view.dataset)
    rows["prompt"] = [cot_prompt(names, h, hl, i, y) for h, hl, i, y in
                      zip(rows["history"], rows["history_label"], rows["item"], rows["label"])]
    done = read_rows(pool_path)
    rows["cot"] = [done.get(row_key(p, meta["identity"], SYSTEM, meta["max_new_tokens"], meta["dtype"], True,
                                    meta["no_repeat"])) for p in rows["prompt"]]
    rows = rows[rows["cot"].notna()].reset_index(drop=True)
    rows = rows.iloc[:limit] if limit is not None else rows
    if rows.empty:
        raise ValueError(f"none of the {len(done)} committed CoTs matches today's prompts or settings (the prompt or "
                         f"RecGen changed since): regenerate with `python benchmarks/cot_pool.py`")
    texts = [c if c.strip() else "(empty)" for c in rows["cot"]]
    cot_z = encode_items(texts, embedder, progress=progress)
    return CoTPool(rows, cot_z.astype(np.float32), os.fspath(pool_path))


RECGEN = ("mixed", "rec", "none")


def default_pool(dataset, n: int | None = None, recgen_mix: str = "mixed", lm: str = "smollm2",
                 max_new_tokens: int = 64, seed: int = 0, progress: bool = True) -> CoTPool:
    """The pool a model reads when none is given (the CLI). ``n=None``: the committed 10% pool (``committed_pool``)
    when it is this dataset's, else 400 rows. Otherwise RecGen (``recgen_mix`` "mixed" | "rec", or "none" for the LM
    as it is) writes the CoTs for ``n`` train rows of the dataset's CTR view; all cached."""
    from ..data.split import ctr_view

    if recgen_mix not in RECGEN:
        raise ValueError(f"unknown recgen {recgen_mix!r}; valid: {list(RECGEN)}")
    view = ctr_view(dataset)
    if n is None and recgen_mix == "mixed" and dataset.name == POOL_DATASET and (ARTEFACTS / POOL_META).is_file():
        return committed_pool(view, progress=progress)
    n = 400 if n is None else n
    if recgen_mix == "none":
        return build_pool(view, n, lm, max_new_tokens=max_new_tokens, seed=seed, progress=progress)
    rg = recgen(view, lm, mix=recgen_mix, seed=seed, progress=progress)
    return build_pool(view, n, (rg.tokenizer, rg.model), identity=recgen_identity(rg), max_new_tokens=max_new_tokens,
                      seed=seed, progress=progress)
