"""One evaluator for every model: full-ranking Recall/NDCG/HR@K with seen items masked, per
head/tail group; AUC and LogLoss for CTR.

Definitions (per user u with target set T_u, ranked list R_u of the top K unseen items):
    HR@K     = 1[|R_u ∩ T_u| > 0]
    Recall@K = |R_u ∩ T_u| / |T_u|
    NDCG@K   = sum_{r in 1..K, R_u[r] in T_u} 1/log2(r+1)  /  sum_{r=1}^{min(|T_u|,K)} 1/log2(r+1)
averaged over users with at least one target (as in RecBole). Equal scores are ranked in a fixed random
item order (``seed``), never by item id (MovieLens ids follow popularity: an id tie-break would hand
a constant-scoring model the popular items). Groups: a user group averages over
its users; an item group keeps only the targets in that group (users with none are skipped), so with
one target per user (leave-one-out) each user counts in the group of its target item. Item groups are
``split.item_groups()``: head/tail, plus cold/warm on a ``hold_out_items`` split.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .data.split import Split

REPORT_KS = (10, 20)
GROUPS = ("head_users", "tail_users", "head_items", "tail_items")


def topk_hits(scores: torch.Tensor, targets: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the top-k items per row and whether each is a target: (idx [B,k], hit bool [B,k]).
    Equal scores keep their column order, exactly as a stable descending sort (``torch.topk`` promises no order
    among ties), at top-k cost: take ``topk``'s set, order it by column and then stably by score; a row whose
    k-th score is tied with an item outside the set (the set itself is then ambiguous) takes the full stable sort.
    (The full sort of every row was half of an AlphaRec epoch on amazon-pantry.)"""
    k = min(k, scores.shape[1])
    vals, cand = torch.topk(scores, k, dim=1)
    cand = cand.sort(dim=1).values
    idx = cand.gather(1, torch.sort(scores.gather(1, cand), dim=1, descending=True, stable=True).indices)
    ambiguous = (scores >= vals[:, -1:]).sum(1) != k
    if ambiguous.any():
        idx[ambiguous] = torch.sort(scores[ambiguous], dim=1, descending=True, stable=True).indices[:, :k]
    return idx, torch.gather(targets, 1, idx)


def ranking_metrics(hits: torch.Tensor, n_targets: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-user HR/Recall/NDCG@k from a hit matrix ordered by rank ([B, >=max(ks)]) and |T_u|."""
    hits = hits.float()
    discount = 1.0 / torch.log2(torch.arange(2, hits.shape[1] + 2, dtype=torch.float32, device=hits.device))
    ideal = torch.cumsum(discount, 0)
    n = n_targets.float().clamp(min=1)
    out = {}
    for k in ks:
        h = hits[:, :k]  # fewer than k columns only when the catalogue is smaller than k
        n_hit = h.sum(1)
        out[f"hr@{k}"] = (n_hit > 0).float()
        out[f"recall@{k}"] = n_hit / n
        idcg = ideal[n_targets.clamp(min=1, max=h.shape[1]).long() - 1]
        out[f"ndcg@{k}"] = (h * discount[:h.shape[1]]).sum(1) / idcg
    return out


def _dense_rows(m: sp.csr_matrix, rows: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(m[rows].toarray() > 0).to(device)


@torch.no_grad()
def evaluate(score_fn: Callable[[torch.Tensor, str], torch.Tensor] | object, split: Split,
             stage: str = "test", ks: Sequence[int] = REPORT_KS, batch_size: int = 1024,
             device="cpu", mask_seen: bool = True, n_negatives: int | None = None,
             seed: int = 0, groups: bool = True, candidates: np.ndarray | None = None,
             per_user: bool = False) -> dict:
    """Rank all items for every user with a ``stage`` target and average the metrics.

    score_fn: a model with ``score_all(users, stage)`` or a function (users, stage) -> [B, n_items].
    mask_seen: exclude train (and, at test, valid) items from the ranking (default, as RecBole).
    n_negatives: if set, rank each target among this many sampled unseen non-target items instead of
        all items (the "100 sampled negatives" protocol of several papers; full ranking is stricter).
    candidates: bool[n_items]; rank only these items and keep only targets among them (e.g. the
        cold-start protocol "recommend among new items": ``candidates=split.cold_items``).
    per_user: also return ``users`` (ids, ascending) and ``per_user`` {metric: array over those users},
        e.g. for a paired comparison of two models (``paired_difference``).
    """
    model = score_fn if hasattr(score_fn, "score_all") else None
    fn = model.score_all if model is not None else score_fn
    was_training = getattr(model, "training", False)
    if model is not None:
        model.eval()
    device = torch.device(device)
    targets = split.matrix(stage)
    if candidates is not None:
        candidates = np.asarray(candidates, bool)
        if candidates.shape != (split.n_items,):
            raise ValueError(f"candidates must be a bool mask of length n_items={split.n_items}")
        targets = (targets @ sp.diags(candidates.astype(np.float32))).tocsr()
        targets.eliminate_zeros()
        not_cand = torch.from_numpy(~candidates).to(device)
    seen = split.seen(stage)
    users = np.flatnonzero(np.diff(targets.indptr) > 0)
    if len(users) == 0:
        raise ValueError(f"no user has a {stage} target in this split; nothing to evaluate")
    item_groups = {g: torch.from_numpy(m).to(device) for g, m in split.item_groups().items()}
    kmax = max(ks)
    rng = np.random.default_rng(seed)
    # equal scores are ranked in a fixed random order, not by item id (ids often follow popularity)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(split.n_items)).to(device)
    values: dict[str, list] = {}
    parts: dict[str, list] = {g: [] for g in item_groups}
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        scores = fn(torch.from_numpy(batch).to(device), stage).float().clone()
        tgt = _dense_rows(targets, batch, device)
        if candidates is not None:
            scores[:, not_cand] = -torch.inf
        if mask_seen:
            seen_b = _dense_rows(seen, batch, device)
            scores[seen_b] = -torch.inf  # a repeat target (seen before) is unreachable, as in RecBole
        if n_negatives is not None:
            allowed = tgt.clone()
            free = (~tgt) & torch.isfinite(scores)
            noise = torch.from_numpy(rng.random(free.shape, dtype=np.float32)).to(device)
            noise[~free] = -1
            allowed.scatter_(1, torch.topk(noise, n_negatives, dim=1).indices, True)
            scores[~allowed] = -torch.inf
        idx, hit = topk_hits(scores[:, perm], tgt[:, perm], kmax)
        idx = perm[idx]
        for name, v in ranking_metrics(hit, tgt.sum(1), ks).items():
            values.setdefault(name, []).append(v.cpu())
        if groups:
            for g, mask in item_groups.items():
                t_g = tgt & mask
                n_g = t_g.sum(1)
                m = ranking_metrics(hit & mask[idx], n_g, ks)
                keep = (n_g > 0).cpu()
                parts[g].append({k: v.cpu()[keep] for k, v in m.items()} | {"users": torch.from_numpy(batch)[keep]})
    values = {k: torch.cat(v) for k, v in values.items()}
    result = {k: float(v.mean()) for k, v in values.items()}
    result["n_users"] = int(len(users))
    if per_user:
        result["users"], result["per_user"] = users, {k: v.numpy() for k, v in values.items()}
    if groups:
        tail = torch.from_numpy(split.tail_users[users])
        users_t = torch.from_numpy(users)
        per_group = {g: {k: v[sel] for k, v in values.items()} | {"users": users_t[sel]}
                     for g, sel in (("head_users", ~tail), ("tail_users", tail))}
        for g, chunks in parts.items():
            per_group[g] = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
        result["by_group"] = {g: {k: float(v.mean()) if len(v) else float("nan") for k, v in vals.items() if k != "users"}
                              | {"n_users": int(len(vals["users"]))} for g, vals in per_group.items()}
        if per_user:
            result["groups_per_user"] = {g: {k: v.numpy() for k, v in vals.items()} for g, vals in per_group.items()}
    if model is not None and was_training:
        model.train()
    return result


def paired_difference(a: dict, b: dict, metric: str = "ndcg@10", group: str | None = None,
                      n_resamples: int = 2000, seed: int = 0) -> dict:
    """Mean per-user difference a - b on ``metric`` (overall, or in one user/item ``group``) with a 95%
    bootstrap interval over users.

    ``a``, ``b``: ``evaluate(..., per_user=True)`` results of two models on the same split and stage.
    The interval covers test-sample noise (which users happen to be in the test set), not the spread
    between training seeds."""
    from scipy.stats import bootstrap

    for r in (a, b):
        if "per_user" not in r:
            raise ValueError("pass results of evaluate(..., per_user=True)")
    if group is not None and group not in a.get("groups_per_user", {}):
        raise ValueError(f"unknown group {group!r}; valid: {sorted(a.get('groups_per_user', {}))}")
    va, vb = (r["per_user"] | {"users": r["users"]} if group is None else r["groups_per_user"][group] for r in (a, b))
    if not np.array_equal(va["users"], vb["users"]):
        raise ValueError("the two results cover different users; evaluate both on the same split and stage")
    d = va[metric] - vb[metric]
    ci = bootstrap((d,), np.mean, n_resamples=n_resamples, confidence_level=0.95, method="percentile",
                   rng=np.random.default_rng(seed)).confidence_interval
    return {"diff": float(d.mean()), "low": float(ci.low), "high": float(ci.high), "n_users": int(len(d))}


def difference_table(results: dict[str, dict], baseline: str, metric: str = "ndcg@10",
                     groups=("all", "tail_users", "head_users", "tail_items", "head_items"), seed: int = 0) -> pd.DataFrame:
    """Each variant minus ``baseline`` on ``metric`` per group, as "diff [95% interval]" (paired
    bootstrap over test users, ``metrics.paired_difference``). ``results``: {label: evaluate(...,
    per_user=True)}. An interval that excludes 0 is a difference the test set can see."""
    rows = {}
    for name, res in results.items():
        if name == baseline:
            continue
        cells = {}
        for g in groups:
            d = paired_difference(res, results[baseline], metric, None if g == "all" else g, seed=seed)
            cells[g.replace("_", " ")] = f"{d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
        rows[name] = cells
    return pd.DataFrame(rows).T.rename_axis(f"{metric} − {baseline}")


# ------------------------------------------------------------------------------------------- CTR
CTR_GROUPS = GROUPS  # per row: the target item's group (head/tail items), the user's (long/short histories)


@torch.no_grad()
def evaluate_ctr(model, split, stage: str = "test", batch_size: int | None = None, device=None, groups: bool = True,
                 per_row: bool = False) -> dict:
    """AUC and LogLoss of a CTR model's click probabilities on ``split``'s ``stage`` rows (``valid`` | ``test``),
    overall and per group: head/tail items (the target item's train popularity, as ``Split.head_items``) and
    head/tail users (tail = the 80% of users with the shortest train histories). ``per_row=True`` adds the
    rows' labels, probabilities and users (for paired comparisons). ``batch_size``: rows per ``predict`` call
    (default: the model's ``eval_batch_size``)."""
    from .models.base import ctr_batch

    batch_size = batch_size or getattr(model, "eval_batch_size", 4096)
    if stage not in ("valid", "test"):
        raise ValueError(f"unknown stage {stage!r}; valid: valid, test")
    arrays = split.arrays(stage)
    device = device or model.device
    was_training = model.training
    model.eval()
    probs = np.concatenate([torch.sigmoid(model.predict(ctr_batch(arrays, np.arange(s, min(s + batch_size, len(arrays["label"]))), device))).float().cpu().numpy()
                            for s in range(0, len(arrays["label"]), batch_size)])
    if was_training:
        model.train()
    labels = arrays["label"]
    out = {"auc": auc(labels, probs), "logloss": logloss(labels, probs), "n": int(len(labels)),
           "positive_rate": float(labels.mean())}
    if groups:
        members = {"head_items": split.head_items[arrays["item"]], "tail_items": ~split.head_items[arrays["item"]],
                   "tail_users": split.tail_users[arrays["user"]], "head_users": ~split.tail_users[arrays["user"]]}
        out["by_group"] = {}
        for g in CTR_GROUPS:
            m = members[g]
            ok = m.any() and labels[m].min() != labels[m].max()
            out["by_group"][g] = {"auc": auc(labels[m], probs[m]) if ok else float("nan"),
                                  "logloss": logloss(labels[m], probs[m]) if m.any() else float("nan"), "n": int(m.sum())}
    if per_row:
        out["per_row"] = {"label": labels, "prob": probs, "user": arrays["user"], "item": arrays["item"]}
    return out


def _resampled_ctr(y: np.ndarray, p: np.ndarray, user: np.ndarray, counts: np.ndarray, metric: str,
                   chunk: int = 100) -> np.ndarray:
    """``metric`` of scores ``p`` under each row of ``counts`` (resamples x users: how often each user was drawn,
    every row of user u weighted counts[r, u]), for all resamples at once. AUC is the weighted Mann-Whitney
    statistic: rows with equal scores form one tie group, and
        AUC_r = sum_g P_rg (N_r,<g + N_rg / 2) / (P_r N_r)
    with P_rg, N_rg the weight of positive / negative rows in group g and N_r,<g that of negatives in lower groups;
    it equals ``roc_auc_score(y, p, sample_weight=w_r)`` (ties count a half, as sklearn's trapezoid). LogLoss is
    the weighted mean of the per-row losses."""
    if metric == "logloss":
        q = np.clip(p, 1e-7, 1 - 1e-7)
        loss = -(y * np.log(q) + (1 - y) * np.log(1 - q))
        per_user = np.bincount(user, weights=loss, minlength=counts.shape[1])
        rows = np.bincount(user, minlength=counts.shape[1]).astype(float)
        return counts @ per_user / (counts @ rows)
    _, group = np.unique(p, return_inverse=True)  # ascending tie groups
    shape = (counts.shape[1], int(group.max()) + 1)
    pos = sp.csr_matrix((y, (user, group)), shape=shape)  # [u, g]: positives of user u in tie group g
    neg = sp.csr_matrix((1 - y, (user, group)), shape=shape)
    out = []
    for c in np.array_split(counts, max(1, -(-len(counts) // chunk))):
        P, N = np.asarray((pos.T @ c.T).T), np.asarray((neg.T @ c.T).T)
        below = np.cumsum(N, axis=1) - N
        out.append((P * (below + N / 2)).sum(1) / (P.sum(1) * N.sum(1)))
    return np.concatenate(out)


def paired_ctr_difference(a: dict, b: dict, metric: str = "auc", n_resamples: int = 1000, seed: int = 0) -> dict:
    """``metric`` (auc | logloss) of model a minus model b on the same rows, with a 95% bootstrap interval that
    resamples users (a user's rows move together: they share a history). ``a``, ``b``: ``evaluate_ctr(...,
    per_row=True)`` results on the same split and stage, or their ``per_row`` (``TrainResult.test_rows``). Covers which users are in the test set, not the spread
    between training seeds. All resamples are scored at once (``_resampled_ctr``)."""
    if metric not in ("auc", "logloss"):
        raise ValueError(f"unknown metric {metric!r}; valid: auc, logloss")
    rows = [r.get("per_row", r) for r in (a, b)]
    if not all(isinstance(r, dict) and {"label", "prob", "user", "item"} <= set(r) for r in rows):
        raise ValueError("pass results of evaluate_ctr(..., per_row=True) or a TrainResult's test_rows")
    ra, rb = rows
    if not (np.array_equal(ra["user"], rb["user"]) and np.array_equal(ra["item"], rb["item"])):
        raise ValueError("the two results cover different rows; evaluate both on the same split and stage")
    y = np.asarray(ra["label"], float)
    users, inverse = np.unique(ra["user"], return_inverse=True)
    rng = np.random.default_rng(seed)
    # one draw per resample, in order (the interval does not depend on how the scoring is batched)
    counts = np.stack([np.bincount(rng.integers(len(users), size=len(users)), minlength=len(users))
                       for _ in range(n_resamples)]).astype(float)
    pos_w, neg_w = counts @ np.bincount(inverse, weights=y, minlength=len(users)), counts @ np.bincount(
        inverse, weights=1 - y, minlength=len(users))
    counts = counts[(pos_w > 0) & (neg_w > 0)]  # a resample with one class only has no AUC
    pa, pb = (np.asarray(r["prob"], float) for r in (ra, rb))
    diffs = _resampled_ctr(y, pa, inverse, counts, metric) - _resampled_ctr(y, pb, inverse, counts, metric)
    low, high = np.percentile(diffs, [2.5, 97.5])
    ones = np.ones((1, len(users)))
    diff = _resampled_ctr(y, pa, inverse, ones, metric)[0] - _resampled_ctr(y, pb, inverse, ones, metric)[0]
    return {"diff": float(diff), "low": float(low), "high": float(high), "n_rows": int(len(y)),
            "n_users": int(len(users))}


def _check_ctr(labels, scores):
    labels, scores = np.asarray(labels, float).ravel(), np.asarray(scores, float).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {labels.shape} vs {scores.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return labels, scores


def auc(labels, scores) -> float:
    """Area under the ROC curve (probability a random positive outranks a random negative)."""
    from sklearn.metrics import roc_auc_score

    labels, scores = _check_ctr(labels, scores)
    if labels.min() == labels.max():
        raise ValueError("AUC needs both positive and negative labels")
    return float(roc_auc_score(labels, scores))


def logloss(labels, probs, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of predicted click probabilities."""
    labels, probs = _check_ctr(labels, probs)
    p = np.clip(probs, eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
