"""One trainer for every model: Adam, early stopping on a validation metric, seed control, tqdm."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import resolve_device, seed_everything
from .data.split import Split
from .metrics import evaluate, evaluate_ctr
from .models.base import Recommender


@dataclass
class TrainResult:
    best_epoch: int = 0
    best_valid: float = float("nan")
    epochs: int = 0
    train_seconds: float = 0.0  # wall time of fit(), validation included
    seconds_per_epoch: float = 0.0  # mean time of one training pass (no validation)
    history: list[dict] = field(default_factory=list)  # per epoch: loss, valid metric, seconds
    valid_metric: str = ""  # the validation metric early stopping read
    test_rows: dict | None = None  # CTR models, set by train_and_test: the test rows' labels, probabilities, users


def fit(model: Recommender, split: Split, epochs: int = 300, lr: float = 1e-3, weight_decay: float = 0.0,
        batch_size: int = 2048, patience: int = 10, valid_metric: str | None = None, eval_every: int = 1,
        seed: int = 2020, device="auto", progress: bool = True, restore_best: bool = True) -> TrainResult:
    """Train ``model`` until ``valid_metric`` on the validation split has not improved for
    ``patience`` evaluations (or ``epochs`` run out); restore the best weights (``restore_best=False``
    keeps the last ones, e.g. to watch what a loss does when it runs unchecked). Never reads test.

    Ranking models validate on full-ranking ``valid_metric`` (default recall@20); CTR models (``task ==
    "ctr"``) on validation AUC (their LogLoss is kept in ``history``). A model with ``lr_factor(epoch)`` sets a
    schedule: each epoch trains at every parameter group's learning rate times that factor (kept in ``history``)."""
    ctr = getattr(model, "task", "ranking") == "ctr"
    valid_names = ["auc"] if ctr else [f"{m}@{k}" for m in ("recall", "ndcg", "hr") for k in (10, 20)]
    valid_metric = valid_metric or valid_names[0 if ctr else 1]
    if valid_metric not in valid_names:
        raise ValueError(f"unknown valid_metric {valid_metric!r}; valid: {valid_names}")
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    device = resolve_device(device)
    model.to(device)
    res = TrainResult(valid_metric=valid_metric)
    t0 = time.perf_counter()
    if not model.trainable or epochs <= 0:
        res.train_seconds = time.perf_counter() - t0
        return res
    opt = torch.optim.Adam(model.param_groups(lr), lr=lr, weight_decay=weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    schedule = getattr(model, "lr_factor", None)  # Molar's warm-up and cosine decay, say
    best_state, bad, pass_seconds = None, 0, []
    stage = getattr(model, "stage", None)  # multi-stage models (PAD): one labelled bar per stage
    desc = f"train {type(model).__name__}" + (f" · stage {stage}" if stage else "")
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        factor = 1.0 if schedule is None else float(schedule(epoch))
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * factor
        t = time.perf_counter()
        total, n = 0.0, 0
        for batch in model.train_batches(batch_size, rng):
            loss = model.loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        pass_seconds.append(time.perf_counter() - t)
        row = {"epoch": epoch, "loss": total / max(n, 1), "seconds": pass_seconds[-1]}
        if schedule is not None:
            row["lr_factor"] = factor
        if epoch % eval_every == 0 or epoch == epochs:
            if ctr:
                v = evaluate_ctr(model, split, "valid", device=device, groups=False)
                score, row["valid_logloss"] = v["auc"], v["logloss"]
            else:
                score = evaluate(model, split, "valid", device=device, groups=False)[valid_metric]
            row[f"valid_{valid_metric}"] = score
            if not score <= res.best_valid:  # also true for the first (nan) comparison
                res.best_valid, res.best_epoch, bad = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
            bar.set_postfix(loss=f"{row['loss']:.4f}", valid=f"{score:.4f}", best=res.best_epoch)
        res.history.append(row)
        if bad >= patience:
            break
    if best_state is not None and restore_best:
        model.load_state_dict(best_state)
    model.eval()
    res.epochs = len(res.history)
    res.train_seconds = time.perf_counter() - t0
    res.seconds_per_epoch = float(np.mean(pass_seconds)) if pass_seconds else 0.0
    return res
