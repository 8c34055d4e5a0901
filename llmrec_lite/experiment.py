"""Train-and-test in one call: the same record (JSON) for the CLI, the notebooks and the benchmark."""
from __future__ import annotations

import copy
import inspect
import math
import platform
import time

import numpy as np
import torch

from . import __version__
from .config import resolve_device
from .data import LOADERS, ctr_view, load_dataset, make_split
from .metrics import GROUPS, evaluate, evaluate_ctr
from .models import get_model, resolve_alias
from . import store as model_store
from .profiling import RunMeter, peak_memory_mb
from .trainer import TrainResult, fit

CTR_REPORT = ("auc", "logloss")

REPORT = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@10")
DATASETS = sorted(LOADERS) + ["synthetic"]


TRAINER_KEYS = frozenset({"epochs", "lr", "batch_size", "patience", "valid_metric", "weight_decay", "eval_every",
                          "restore_best"})
TRAINER_TYPES = {"epochs": 1, "lr": 1.0, "batch_size": 1, "patience": 1, "valid_metric": "", "weight_decay": 1.0,
                 "eval_every": 1, "restore_best": True}


TRAINER_RANGES = {"epochs": (1, "at least 1 (e.g. epochs=50)"), "batch_size": (1, "at least 1 (e.g. batch_size=256)"),
                  "patience": (1, "at least 1 (e.g. patience=10)"), "eval_every": (1, "at least 1 (e.g. eval_every=1)"),
                  "lr": (0, "above 0 (e.g. lr=1e-3)"), "weight_decay": (0, "0 or more (e.g. weight_decay=1e-5)")}


def check_ranges(overrides: dict) -> None:
    """Trainer settings out of their range (``--epochs -1``, ``lr=0``) are an error that names a valid value."""
    for key, (low, want) in TRAINER_RANGES.items():
        value = overrides.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        bad = value <= 0 if key == "lr" else value < low
        if bad or value != value:  # nan too
            raise ValueError(f"setting {key}={value!r}: must be {want}")


def check_types(name: str, overrides: dict, defaults: dict) -> None:
    """A setting whose default is a bool / int / float / str must get one (an int is a fine float)."""
    for key, value in overrides.items():
        d = defaults.get(key, inspect.Parameter.empty)
        if d is inspect.Parameter.empty or d is None:
            continue
        kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(type(d))
        if kinds is None:
            continue
        ok = isinstance(value, kinds) and (type(d) is bool or not isinstance(value, bool))
        if not ok:
            raise ValueError(f"setting {key}={value!r} for {name}: expected {type(d).__name__} "
                             f"(e.g. {key}={d!r})")


def _in_force(cls, model_kw: dict, hp: dict, task: str) -> dict:
    """Every hyper-parameter the run used: trainer defaults, model constructor defaults, then overrides."""
    trainer = {k: p.default for k, p in inspect.signature(fit).parameters.items() if k in TRAINER_KEYS}
    trainer |= hp
    trainer["valid_metric"] = trainer["valid_metric"] or ("auc" if task == "ctr" else "recall@20")
    model = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
             if k not in ("self", "split") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    model |= model_kw
    def plain(v):  # what the JSON record can hold: arrays and objects (LLM-CF's CoT pool) as a short text
        if hasattr(v, "shape"):
            return f"<array {list(v.shape)}>"
        return v if v is None or isinstance(v, (str, int, float, bool, list, tuple, dict)) else repr(v)

    return trainer | {k: plain(v) for k, v in model.items()}


def _lm_identity(spec, model_kw: dict) -> dict | None:
    """Which language model made the item vectors (None for models that read no text)."""
    if not spec.reads_text:
        return None
    if model_kw.get("item_z") is not None:
        return {"item_z": "passed in", "shape": list(model_kw["item_z"].shape)}
    from .text.models import resolve

    name = model_kw.get("encoder", inspect.signature(spec.cls.__init__).parameters["encoder"].default)
    if name == "random" or str(name).startswith("random-"):
        return {"encoder": name, "identity": "seeded random unit vectors (control)"}
    lm = resolve(name)
    return {"encoder": name, "identity": lm.identity, "path": lm.path, "gguf_file": lm.gguf_file,
            "encoder_kwargs": model_kw.get("encoder_kwargs")}


def _step_peak_mb(model, batch_size: int, seed: int, device) -> float:
    """Peak tensor memory (MB, above the weights and optimiser state already held) of one training step's
    forward and backward on a batch of train rows at the trainer's batch size; the model is left as it was
    (the gradients are dropped, buffers a training-mode forward updates, e.g. batch-norm statistics, restored)."""
    batch = next(model.train_batches(batch_size, np.random.default_rng(seed)))
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        model.loss(batch).backward()

    try:
        return peak_memory_mb(step, device)
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        model.eval()


def _build_and_fit(model: str, split, seed: int, device, progress: bool, after_stage, overrides: dict,
                   store: bool | None = None, retrain: bool | None = None):
    """Check the settings, build ``model`` on ``split`` and fit it stage by stage (early stopping on validation;
    test is not read), or load the same run from the model store (store.py). Returns (spec, model kwargs, trainer
    settings, fitted model, last TrainResult, stages, how it was made: {"environment", "model_store", ...})."""
    spec = get_model(model)
    cls, protocol, defaults = spec.cls, spec.protocol, spec.defaults
    if split.protocol != protocol:
        how = "data.ctr_view(dataset)" if protocol == "ctr" else f"data.make_split(dataset, {protocol!r})"
        raise ValueError(f"{model} expects the {protocol!r} split ({how}), got {split.protocol!r}")
    hp = dict(defaults)
    model_keys = set(inspect.signature(cls.__init__).parameters) - {"self", "split"}
    unknown = sorted(set(overrides) - TRAINER_KEYS - model_keys)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for {model}; valid: {sorted(TRAINER_KEYS | model_keys)}")
    sig_defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    check_types(model, overrides, TRAINER_TYPES | sig_defaults)
    check_ranges(overrides)
    hp.update({k: v for k, v in overrides.items() if k in TRAINER_KEYS})
    model_kw = {k: v for k, v in overrides.items() if k not in TRAINER_KEYS}
    if "seed" in model_keys:  # a model that draws data of its own (Molar's fine-tuning examples) uses the run's seed
        model_kw["seed"] = seed
    store = model_store.enabled() if store is None else store
    retrain = model_store.retrain_requested() if retrain is None else retrain
    key, made = None, {}
    if store and cls.trainable:
        try:
            key, key_hash = model_store.run_key(model, split, seed, resolve_device(device), overrides)
        except model_store.Unkeyable as e:
            made = {"model_store": f"not stored: {e}"}
    elif store:
        made = {"model_store": "not stored: nothing to train"}
    else:
        made = {"model_store": "off"}
    torch.manual_seed(seed)
    if key is not None and not retrain and after_stage is None:  # after_stage watches each stage: loaded stage by stage
        loaded = _load_stored(cls, split, model_kw, key_hash, model, seed, device)
        if loaded is not None:
            return (spec, model_kw, hp) + loaded
    m = cls(split, **model_kw)
    initial = model_store.tensor_hashes(m) if key is not None else None  # what training leaves as built is not saved
    shared = _shared_stage(cls, model_kw, hp, overrides, split, seed, device) if key is not None else None
    names = getattr(m, "stages", (None,))
    stages, loaded_stages = [], []
    meter = RunMeter()
    for i, stage in enumerate(names):  # multi-stage models (PAD) are fitted stage by stage
        if stage is not None:
            m.set_stage(stage)
        last = i == len(names) - 1
        got = None
        if key is not None and not retrain and stage is not None:  # this stage of this very run, stored earlier
            h = key_hash if last else _stage_hash(key, stage)
            got = _load_into(m, h, model, f"{model} stage {stage} (seed {seed})")
        if got is None and shared is not None and shared[0] == stage and not retrain:  # or the standalone run it equals
            got = _load_into(getattr(m, shared[1]), shared[4], shared[2],
                             f"{model} stage {stage} = {shared[2]} {shared[3]} (seed {seed})")
        if got is not None:
            res = TrainResult(**got["result"])
            loaded_stages.append(stage)
            stages.append(got["stages"][-1] | {"stage": stage} if stage is not None else got["stages"][-1])
        else:
            res = fit(m, split, seed=seed, device=device, progress=progress, **hp)
            stages.append({"stage": stage, "epochs": res.epochs, "best_epoch": res.best_epoch,
                           "best_valid": res.best_valid, "train_seconds": res.train_seconds})
            if key is not None and not last:
                _save_stage(m, key | {"stage": stage}, _stage_hash(key, stage), res, stages, meter, initial)
            if shared is not None and shared[0] == stage:
                sub_key = model_store.run_key(shared[2], split, seed, resolve_device(device), shared[3])[0]
                _save_stage(getattr(m, shared[1]), sub_key, shared[4], res, [stages[-1] | {"stage": None}], meter, None)
        if after_stage is not None and stage is not None:
            after_stage(stage, m)
    made["environment"] = _environment(device) | {k: v for k, v in meter.stop().items() if k != "wall_seconds"}
    if key is not None:
        if len(loaded_stages) == len(names):
            made["model_store"] = {"loaded": model_store.path_of(key_hash, model).name}
        else:
            result = {k: v for k, v in vars(res).items() if k != "test_rows"}
            meta = {"result": result, "stages": stages, "environment": made["environment"],
                    "saved": time.strftime("%Y-%m-%d %H:%M")}
            made["model_store"] = {"saved": model_store.save(key, key_hash, m, meta, initial).name}
        if loaded_stages:
            made["model_store"]["stages_loaded"] = loaded_stages
    return spec, model_kw, hp, m, res, stages, made


def _stage_hash(key: dict, stage: str) -> str:
    """The store key of a multi-stage run after ``stage`` (the last stage's file is the whole run's)."""
    return model_store.key_hash(key | {"stage": stage})


def _save_stage(module, key: dict, key_hash: str, res, stages: list, meter, initial) -> None:
    result = {k: v for k, v in vars(res).items() if k != "test_rows"}
    env = {k: v for k, v in meter.stop().items() if k != "wall_seconds"}  # stop() only reads: the meter runs on
    model_store.save(key, key_hash, module, {"result": result, "stages": stages, "environment": env,
                                             "saved": time.strftime("%Y-%m-%d %H:%M")}, initial)


def _shared_stage(cls, model_kw: dict, hp: dict, overrides: dict, split, seed: int, device):
    """(stage, attribute, model, its overrides, its store hash) when one stage of ``cls`` trains exactly the
    standalone run of another registered model (PAD's stage 1 is SASRec-BCE, number for number: same start, same
    seeded trainer), so that the model store shares that run both ways; None otherwise (the settings differ)."""
    share = getattr(cls, "shared_stage", None)
    if share is None:
        return None
    stage, attr, sub_model, fixed, args = share
    sub = get_model(sub_model)
    own = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    theirs = {k: p.default for k, p in inspect.signature(sub.cls.__init__).parameters.items()}
    trainer = {k: v for k, v in hp.items() if sub.defaults.get(k) != v}  # where the stage's trainer differs
    if dict(sub.defaults) | trainer != hp:
        return None
    sub_over = dict(fixed) | {k: model_kw.get(k, own[k]) for k in args if model_kw.get(k, own[k]) != theirs[k]} | trainer
    try:
        return stage, attr, sub_model, sub_over, model_store.run_key(sub_model, split, seed, resolve_device(device),
                                                                      sub_over)[1]
    except model_store.Unkeyable:
        return None


def _load_into(m, key_hash: str, model: str, what: str) -> dict | None:
    """Load the stored state ``key_hash`` into the built module ``m``; its meta, or None (absent, unreadable or not
    fitting: said in one line, and the caller trains)."""
    hit = model_store.load(key_hash, model)
    if hit is None:
        return None
    state, meta = hit
    unchanged = meta.get("unchanged", {})
    try:
        if unchanged:
            now = model_store.tensor_hashes(m)
            if any(now.get(k) != h for k, h in unchanged.items()):
                raise RuntimeError("the tensors left out of the file (as built) are not built the same now")
        missing, unexpected = m.load_state_dict(state, strict=False)
        if unexpected or set(missing) != set(unchanged):
            raise RuntimeError(f"missing {sorted(set(missing) - set(unchanged))[:3]}, unexpected {unexpected[:3]}")
    except RuntimeError as e:
        print(f"model store: {model_store.path_of(key_hash, model).name} does not fit {model} "
              f"({str(e).splitlines()[0][:100]}); training again")
        return None
    print(f"{what} loaded from the model store: trained {meta['saved']} in {meta['result']['train_seconds']:.0f} s; "
          f"retrain=True (CLI --retrain, LLMREC_RETRAIN=1) trains it again")
    return meta


def _load_stored(cls, split, model_kw: dict, key_hash: str, model: str, seed: int, device):
    """The stored run of this key as (model, TrainResult, stages, made), or None (absent, unreadable, or weights
    that no longer fit the model: each said in one line, then the caller trains again)."""
    if not model_store.path_of(key_hash, model).is_file():
        return None
    with torch.random.fork_rng(devices=[]):  # a file that turns out unreadable leaves the caller's RNG as it was
        m = cls(split, **model_kw)
    for stage in getattr(m, "stages", (None,)):  # the same stage switches as training made (PAD's copies, freezing)
        if stage is not None:
            m.set_stage(stage)
    meta = _load_into(m, key_hash, model, f"{model} (seed {seed})")
    if meta is None:
        return None
    m.to(resolve_device(device)).eval()
    made = {"environment": meta["environment"],
            "model_store": {"loaded": model_store.path_of(key_hash, model).name, "saved": meta["saved"]}}
    return m, TrainResult(**meta["result"]), meta["stages"], made


def _environment(device) -> dict:
    dev = resolve_device(device)
    gpu = {"gpu": torch.cuda.get_device_name(dev)} if dev.type == "cuda" else {}
    from .text.models import default_dtype

    return {"llmrec_lite": __version__, "torch": torch.__version__, "device": str(dev),
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "lm_dtype": default_dtype(dev)} | gpu


def _fit_record(model: str, split, seed: int, device, spec, model_kw: dict, hp: dict, m, res, stages,
                overrides: dict, made: dict) -> dict:
    """The part of a run's record that training alone determines (no test metric)."""
    return {
        "model": model, "task": spec.task, "dataset": split.dataset.name, "split": split.protocol, "seed": seed,
        "train_seconds": sum(st["train_seconds"] for st in stages), "epochs": sum(st["epochs"] for st in stages),
        "best_epoch": res.best_epoch,
        "seconds_per_epoch": res.seconds_per_epoch, "best_valid": res.best_valid,
        **({"stages": stages} if len(stages) > 1 else {}),
        "parameters": {"trainable": sum(p.numel() for p in m.parameters() if p.requires_grad),
                       "frozen": sum(p.numel() for p in m.parameters() if not p.requires_grad)},
        "hyperparameters": _in_force(spec.cls, model_kw, hp, spec.task),
        "overrides": sorted(overrides),
        "language_model": _lm_identity(spec, model_kw),
        "dataset_stats": split.dataset.stats(),
        "environment": made["environment"],
        "model_store": made["model_store"],
        **({"timing_contended": True} if made["environment"].get("contended") else {}),
    }


def train_and_validate(model: str, split, seed: int = 2020, device="auto", progress: bool = True,
                       store: bool | None = None, retrain: bool | None = None, **overrides):
    """Build and train ``model`` as ``train_and_test`` does, without reading test: for choosing settings on
    validation (sweeps). Returns (fitted model, TrainResult, record); the record has ``best_valid`` (the trainer's
    ``valid_metric`` on validation) and no test metric. ``store`` / ``retrain``: as in ``train_and_test``."""
    spec, model_kw, hp, m, res, stages, made = _build_and_fit(model, split, seed, device, progress, None, overrides,
                                                              store, retrain)
    return m, res, _fit_record(model, split, seed, device, spec, model_kw, hp, m, res, stages, overrides, made) | {
        "valid_metric": res.valid_metric}


def train_and_test(model: str, split, seed: int = 2020, device="auto", progress: bool = True, after_stage=None,
                   store: bool | None = None, retrain: bool | None = None, **overrides):
    """Build ``model`` on ``split``, train it (early stopping on validation) and test it.

    Returns (fitted model, TrainResult, record) where record is the JSON the CLI writes.
    ``overrides``: trainer settings (epochs, lr, batch_size, patience, valid_metric) or model
    constructor arguments (e.g. dim, n_layers). ``after_stage(stage, model)``: called after each fitted
    stage of a multi-stage model (PAD), e.g. to measure it before the next stage changes it.
    Ranking models report full-ranking metrics; CTR models (task "ctr") AUC and LogLoss; both per group, and
    the TrainResult of a CTR model keeps the test rows' probabilities (``test_rows``, as ``evaluate_ctr(...,
    per_row=True)["per_row"]``) for ``metrics.paired_ctr_difference``.

    The model store (store.py): a run identical to a stored one (same model, split rows, seed, overrides, device,
    training code) is loaded instead of trained, and says so in one line; its record keeps the stored training
    time and environment and is tested anew. ``store=False`` (or ``LLMREC_MODEL_STORE=off``) neither loads nor
    saves; ``retrain=True`` (or ``LLMREC_RETRAIN=1``) trains and overwrites. ``after_stage`` disables loading.
    """
    spec, model_kw, hp, m, res, stages, made = _build_and_fit(model, split, seed, device, progress, after_stage,
                                                              overrides, store, retrain)
    if spec.task == "ctr":
        t = time.perf_counter()
        test = evaluate_ctr(m, split, "test", device=resolve_device(device), per_row=True)
        infer = time.perf_counter() - t
        res.test_rows = test["per_row"]  # for paired comparisons without a second pass over test
        metrics = {k: test[k] for k in CTR_REPORT + ("positive_rate",)} | {"by_group": test["by_group"]}
        batch_size = hp.get("batch_size", inspect.signature(fit).parameters["batch_size"].default)
        steps = math.ceil(len(split.train) / batch_size)
        size = {"n_test_examples": test["n"], "history": split.max_history, "train_examples": len(split.train),
                "seconds_per_train_step": res.seconds_per_epoch / max(steps, 1),
                "ms_per_inference_example": 1000 * infer / max(test["n"], 1),
                "peak_memory_mb": _step_peak_mb(m, batch_size, seed, resolve_device(device))}
    else:
        test = evaluate(m, split, "test", device=resolve_device(device))
        keep = REPORT + ("hr@20",)
        metrics = {k: test[k] for k in keep} | {
            "by_group": {g: {k: v[k] for k in keep + ("n_users",)} for g, v in test["by_group"].items()}}
        size = {"n_test_users": test["n_users"]}
    fitted = _fit_record(model, split, seed, device, spec, model_kw, hp, m, res, stages, overrides, made)
    head = ("model", "task", "dataset", "split", "seed")
    record = {k: fitted[k] for k in head} | {"metrics": metrics, **size} | {
        k: v for k, v in fitted.items() if k not in head}
    return m, res, record


def refit_stage(model, name: str, split, stage: str, seed: int = 2020, device="auto", progress: bool = False,
                **settings):
    """Fit one stage of a multi-stage model again, on a copy, with some settings changed: e.g. PAD's
    disentangle stage from a snapshot taken after alignment, with another gate learning rate.

    ``name``: the model's registry name (its trainer defaults apply); ``settings``: trainer settings or
    attributes of the model (``gate_lr``); a model fitted with ``until=`` goes on to ``stage``. Early stopping
    on validation as in ``train_and_test``; the test split is not read. Returns (model copy, TrainResult)."""
    hp = dict(get_model(name).defaults) | {k: v for k, v in settings.items() if k in TRAINER_KEYS}
    m = copy.deepcopy(model)
    for key, value in settings.items():
        if key in TRAINER_KEYS:
            continue
        if not hasattr(m, key):
            raise ValueError(f"{type(m).__name__} has no setting {key!r}; trainer settings: {sorted(TRAINER_KEYS)}")
        setattr(m, key, value)
    every = getattr(type(m), "stages", None)
    if every is None:
        raise ValueError(f"{type(m).__name__} is trained in one stage; use train_and_test")
    if stage in every and stage not in m.stages:  # a model fitted with until=...: let it go on to ``stage``
        m.stages = every[:every.index(stage) + 1]
    m.set_stage(stage)
    return m, fit(m, split, seed=seed, device=device, progress=progress, **hp)


def run(model: str, dataset: str = "ml-100k", epochs: int | None = None, seed: int = 2020, device="auto",
        root=None, progress: bool = True, min_rating: float | None = None, k_core: int = 0,
        store: bool | None = None, retrain: bool | None = None, **overrides) -> dict:
    """Load ``dataset`` (optionally keeping ratings >= min_rating, then a k-core), split it the way
    ``model`` needs, train and test; return the JSON record. CTR models also take ``history`` (behaviours per
    row of the CTR view, default 20) and ``train_examples`` (a seeded subset of the train rows). ``store`` /
    ``retrain``: the model store, as in ``train_and_test``."""
    model = resolve_alias(model, overrides)
    protocol = get_model(model).protocol
    resolve_device(device)  # a bad --device fails before any data or LM is loaded
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {DATASETS}")
    if epochs is not None:
        overrides["epochs"] = epochs
    check_ranges(overrides)  # before any data or LM is loaded
    ctr = {k: overrides.pop(k) for k in ("history", "train_examples") if k in overrides}
    if ctr and protocol != "ctr":
        raise ValueError(f"{sorted(ctr)}: settings of the CTR view (history length, train rows), for CTR models only")
    check_types(model, ctr, {"history": 20, "train_examples": 1})
    ds = load_dataset(dataset, root=root, min_rating=min_rating, k_core=k_core)
    if protocol == "ctr":
        split = ctr_view(ds, max_history=ctr.get("history", 20))
        if "train_examples" in ctr:
            split = split.subsample(train=ctr["train_examples"], seed=seed)
    else:
        split = make_split(ds, protocol, seed=seed)
    return train_and_test(model, split, seed=seed, device=device, progress=progress, store=store, retrain=retrain,
                          **overrides)[2]


def format_table(records: list[dict], groups: bool = True) -> str:
    """A plain-text metrics table; one row per record (and per group if asked)."""
    ctr = [r.get("task") == "ctr" for r in records]
    if any(ctr) and not all(ctr):
        return "\n\n".join(format_table([r for r, c in zip(records, ctr) if c == k], groups) for k in (False, True))
    report = CTR_REPORT if all(ctr) else REPORT
    cols = ["model", "rows"] + list(report)
    lines = []
    for r in records:
        rows = [("all", r["metrics"])] + ([(g, r["metrics"]["by_group"][g]) for g in GROUPS] if groups else [])
        for name, m in rows:
            lines.append([r["model"], name] + [f"{m[k]:.4f}" for k in report])
    widths = [max(len(c), *(len(l[i]) for l in lines)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*["model", "rows" if all(ctr) else "users"] + list(report)), sep]
                     + [fmt.format(*l) for l in lines])
