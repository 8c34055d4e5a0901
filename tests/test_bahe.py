"""BAHE: the behaviour table is the lower layers' mean-pooled output, the token-level baseline differs only in
where behaviours are encoded (same start, same head), lower layers never train, the N behaviour sequences are
independent rows, padding and batch mates change nothing; the CTR view's subsample and history settings."""
import numpy as np
import pytest
import torch

from conftest import make_tiny_llama
from llmrec_lite.data import ctr_view, leave_one_out
from llmrec_lite.experiment import run, train_and_test
from llmrec_lite.models import BAHE
from llmrec_lite.models.bahe import behaviour_sequences, compact
from llmrec_lite.models.base import ctr_batch

KW = dict(split_layer=2, upper_layers=2, tokens=8, dim=16, hidden=(16,), dropout=0.0)


@pytest.fixture(scope="module")
def setup(synth):
    view = ctr_view(synth, max_history=6)
    return view, make_tiny_llama(synth.item_texts)


def batch(view, rows=None, part="train"):
    a = view.arrays(part)
    return ctr_batch(a, np.arange(len(a["label"])) if rows is None else np.asarray(rows), "cpu")


def test_sequences_and_compaction_by_hand():
    hist = torch.tensor([[0, 3, 5, 7], [2, 4, 0, 6]])
    lab = torch.tensor([[-1, 1, 0, 1], [0, 0, -1, 1]])
    assert behaviour_sequences(hist, lab, "label").tolist() == [[0, 3, 0, 7], [0, 0, 0, 6], [0, 0, 5, 0], [2, 4, 0, 0]]
    assert behaviour_sequences(hist, lab, "all").tolist() == hist.tolist()
    v, m = compact(torch.tensor([[0, 3, 0, 7], [0, 0, 0, 0]]), torch.tensor([[0, 1, 0, 1], [0, 0, 0, 0]]).bool())
    assert v.tolist() == [[3, 7], [0, 0]] and m.tolist() == [[True, True], [False, False]]


def test_behaviour_table_is_the_lower_layers_mean_pooled(setup):
    view, pair = setup
    m = BAHE(view, lm=pair, encoding="token", **KW).eval()
    with torch.no_grad():
        for i in (0, 7, 25):
            mask = m.tok_mask[i + 1]
            x = m.lower(m.lower.embed(m.tok_ids[i + 1][mask][None]), torch.ones(1, int(mask.sum()), dtype=torch.long))
            assert torch.allclose(x[0].mean(0), m.atoms[i + 1], atol=1e-4)  # the paper's plain mean (the default)
            skip = BAHE.behaviour_table(view.dataset.item_texts[i:i + 1], "smollm2", pair, None,
                                        KW["split_layer"], KW["tokens"], pooling="mean_skip_first")
            assert np.allclose(x[0, 1:].mean(0).numpy(), skip[0], atol=1e-4)  # the first token skipped
    assert torch.equal(m.atoms[0], torch.zeros_like(m.atoms[0]))  # padding row
    with pytest.raises(ValueError, match="pooling"):
        BAHE(view, lm=pair, pooling="max", **KW)


def test_both_encodings_start_from_the_same_weights(setup):
    view, pair = setup
    torch.manual_seed(1)
    a = BAHE(view, lm=pair, encoding="atomic", **KW).state_dict()
    torch.manual_seed(1)
    t = BAHE(view, lm=pair, encoding="token", **KW).state_dict()
    assert set(a) - set(t) == {"sink"}  # BAHE's fixed first input (not trained)
    assert all(k.startswith(("lower.", "tok_")) for k in set(t) - set(a))
    assert all(torch.equal(a[k], t[k]) for k in set(a) & set(t))


@pytest.mark.parametrize("encoding", ["atomic", "token"])
def test_lower_layers_never_train_and_the_shared_lm_is_untouched(setup, encoding):
    view, pair = setup
    before = {n: p.detach().clone() for n, p in pair[1].named_parameters()}
    flags = {n: p.requires_grad for n, p in pair[1].named_parameters()}
    m = BAHE(view, lm=pair, encoding=encoding, **KW)
    opt = torch.optim.Adam([g for grp in m.param_groups(1e-2) for g in grp["params"]], lr=1e-2)
    loss = m.loss(batch(view, range(32)))
    loss.backward()
    assert all(p.grad is not None for p in m.upper.parameters())
    if m.lower is not None:
        assert all(not p.requires_grad and p.grad is None for p in m.lower.parameters())
    opt.step()
    assert all(torch.equal(p, before[n]) for n, p in pair[1].named_parameters())
    assert {n: p.requires_grad for n, p in pair[1].named_parameters()} == flags
    grouped = {id(p) for g in m.param_groups(1e-3) for p in g["params"]}
    assert not grouped & {id(p) for p in (m.lower.parameters() if m.lower is not None else [])}


@pytest.mark.parametrize("encoding", ["atomic", "token"])
def test_sequences_are_independent_and_padding_changes_nothing(setup, encoding):
    view, pair = setup
    m = BAHE(view, lm=pair, encoding=encoding, **KW).eval()
    a = view.arrays("train")
    rows = np.flatnonzero(((a["hist_label"] == 1).sum(1) >= 2) & ((a["hist_label"] == 0).sum(1) >= 1))[:8]
    b = batch(view, rows)
    with torch.no_grad():
        u = m.user_vector(b)
        b2 = dict(b, hist=b["hist"].clone())
        r, c = 0, int(torch.nonzero(b["hist_label"][0] == 0)[0])
        b2["hist"][r, c] = 1 + (int(b["hist"][r, c]) % view.n_items)  # another disliked behaviour
        u2 = m.user_vector(b2)
        d = KW["dim"]
        assert torch.equal(u2[:, :d], u[:, :d])  # the liked sequence never sees the disliked one
        assert not torch.allclose(u2[0, d:], u[0, d:]) and torch.equal(u2[1:], u[1:])
        # more left padding, and the row alone instead of in a batch: the same prediction
        wide = dict(b, hist=torch.cat([torch.zeros(len(rows), 5, dtype=torch.long), b["hist"]], 1),
                    hist_label=torch.cat([torch.full((len(rows), 5), -1), b["hist_label"]], 1))
        p = m.predict(b)
        assert torch.allclose(m.predict(wide), p, atol=1e-5)
        alone = {k: v[3:4] for k, v in b.items()}
        assert torch.allclose(m.predict(alone), p[3:4], atol=1e-5)
        empty = torch.zeros(2, 6, dtype=torch.long)
        assert torch.equal(m.sequence_states(empty), torch.zeros(2, m.atoms.shape[1]))
        # rows run in length buckets: one bucket (everything padded to the longest row) gives the same logits
        m.length_buckets = 1
        assert torch.allclose(m.predict(b), p, atol=1e-5)
        m.length_buckets = 3
        assert torch.allclose(m.predict(b), p, atol=1e-5)


def test_evaluation_runs_in_the_models_eval_batches(setup):
    view, pair = setup
    from llmrec_lite.metrics import evaluate_ctr

    m = BAHE(view, lm=pair, encoding="token", **KW).eval()
    assert m.eval_batch_size == 32 and BAHE(view, lm=pair, **KW).eval_batch_size == 512
    sizes, predict = [], m.predict
    m.predict = lambda b: sizes.append(len(b["item"])) or predict(b)
    m.eval_batch_size = 7
    small = evaluate_ctr(m, view, "test", per_row=True)
    n = len(view.arrays("test")["label"])
    assert sizes == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    whole = evaluate_ctr(m, view, "test", batch_size=n, per_row=True)  # an explicit batch_size wins
    assert sizes[-1] == n and np.allclose(small["per_row"]["prob"], whole["per_row"]["prob"], atol=1e-5)


def test_bahe_learns_and_reproduces(setup):
    view, pair = setup
    recs = []
    for _ in range(2):
        # sink=False: the tiny random LM has no attention sink for S to stand for (its first-token state is ordinary)
        m, res, rec = train_and_test("bahe", view, lm=pair, **KW, sink=False, progress=False, epochs=6, patience=6,
                                     batch_size=32, lr=3e-3)
        recs.append(rec)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert recs[0]["metrics"] == recs[1]["metrics"] and recs[0]["metrics"]["auc"] > 0.6
    assert recs[0]["history"] == 6 and recs[0]["train_examples"] == len(view.train)
    assert recs[0]["seconds_per_train_step"] > 0 and recs[0]["ms_per_inference_example"] > 0
    assert recs[0]["peak_memory_mb"] > 0  # one step's forward + backward; measured after test, grads dropped
    assert all(p.grad is None for p in m.parameters()) and not m.training


def test_random_behaviour_table_keeps_the_scale_not_the_content(setup):
    view, pair = setup
    lm = BAHE(view, lm=pair, **KW).atoms[1:]
    rnd = BAHE(view, lm=pair, atomic="random", **KW).atoms[1:]
    assert rnd.shape == lm.shape and not torch.allclose(rnd, lm)
    assert torch.allclose(rnd.mean(0), lm.mean(0), atol=3 * float(lm.std(0).max()) / len(lm) ** 0.5)
    assert torch.equal(rnd, BAHE(view, lm=pair, atomic="random", **KW).atoms[1:])  # seeded


def test_bad_settings_are_named(setup, synth):
    view, pair = setup
    with pytest.raises(ValueError, match="split_layer=3, upper_layers=2"):
        BAHE(view, lm=pair, **KW | dict(split_layer=3))
    with pytest.raises(ValueError, match="unknown encoding 'tokens'"):
        BAHE(view, lm=pair, **KW | dict(encoding="tokens"))
    with pytest.raises(ValueError, match="only encoding='atomic'"):
        BAHE(view, lm=pair, **KW | dict(encoding="token", atomic="random"))
    with pytest.raises(ValueError, match="CTR model"):
        BAHE(leave_one_out(synth), lm=pair, **KW)
    z = np.random.default_rng(0).standard_normal((view.n_items, 32)).astype(np.float32)
    assert np.array_equal(BAHE(view, lm=pair, item_z=z, **KW).atoms[1:].numpy(), z)  # a given table is the table
    with pytest.raises(ValueError, match="item_z has 8 columns; the upper layers read 32"):
        BAHE(view, lm=pair, item_z=z[:, :8], **KW)
    with pytest.raises(ValueError, match="item_z .* is for encoding='atomic'"):
        BAHE(view, lm=pair, item_z=z, **KW | dict(encoding="token"))


def test_subsample_keeps_the_full_groups_and_is_seeded(synth):
    view = ctr_view(synth)
    s = view.subsample(train=100, test=30, seed=3)
    assert (len(s.train), len(s.valid), len(s.test)) == (100, len(view.valid), 30)
    assert np.array_equal(s.head_items, view.head_items) and np.array_equal(s.tail_users, view.tail_users)
    assert s.train.equals(view.subsample(train=100, test=30, seed=3).train)
    assert not s.train.equals(view.subsample(train=100, seed=4).train)
    assert s.arrays("train")["hist"].shape == (100, view.max_history)
    more = view.subsample(train=200, test=30, seed=3)  # more train rows: the same test rows
    assert more.test.equals(s.test) and len(more.train) == 200
    assert set(map(tuple, s.train[["user", "item"]].to_numpy())) <= set(map(tuple, view.train[["user", "item"]].to_numpy()))
    with pytest.raises(ValueError, match="positive number of rows"):
        view.subsample(train=0)


def test_run_takes_the_ctr_view_settings():
    rec = run("din", "synthetic", epochs=1, progress=False, history=4, train_examples=120)
    assert rec["history"] == 4 and rec["train_examples"] == 120
    with pytest.raises(ValueError, match="for CTR models only"):
        run("sasrec", "synthetic", epochs=1, progress=False, history=4)
    with pytest.raises(ValueError, match="expected int"):
        run("din", "synthetic", epochs=1, progress=False, history="long")


def test_behaviour_counts_by_hand():
    from llmrec_lite.explore.bahe import behaviour_counts
    from test_ctr import tiny

    t = behaviour_counts(tiny(), histories=(3, 1))
    # user 1: histories of 0,1,2,2,3,3 behaviours (items 3 and 4 share a second), user 2: 0,1,2
    assert t.loc[3, "token-level encodings"] == 14 and t.loc[3, "BAHE encodings (distinct)"] == 5
    # last behaviour only: user 1 reads items 1,2,2,4,5 and user 2 items 1,2 -> 7 encodings of 4 distinct items
    assert t.loc[1, "token-level encodings"] == 7 and t.loc[1, "BAHE encodings (distinct)"] == 4
    assert t.loc[1, "times each behaviour is re-encoded"] == pytest.approx(7 / 4)


def test_peak_memory_counts_what_is_alive_at_once():
    from llmrec_lite.profiling import peak_memory_mb

    mb = 4 * 2 ** 20 / 2 ** 20  # one 1M-float tensor = 4 MB

    def together():
        a = torch.ones(2 ** 20)
        b = torch.ones(2 ** 20)
        return float((a + b)[0])  # a, b and their sum alive at once: 12 MB

    def one_after_another():
        for _ in range(3):
            a = torch.ones(2 ** 20)
            del a

    assert 3 * mb <= peak_memory_mb(together) < 3.5 * mb
    assert mb <= peak_memory_mb(one_after_another) < 1.5 * mb


def test_cpu_profiling_writes_nothing_to_stderr_and_restores_it(capfd):
    import os

    from llmrec_lite.profiling import native_stderr_silenced, peak_memory_mb

    peak_memory_mb(lambda: torch.ones(1000).sum())
    with native_stderr_silenced():
        os.write(2, b"native noise\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # the profiler's start/stop lines and the noise are gone, fd 2 works


def test_predicted_cost_by_hand():
    from llmrec_lite.explore.bahe import predicted_cost

    # one behaviour of one token: token level = lower (forward) + upper (3x) over the same single position
    assert predicted_cost(1, 1, 1, l_low=3, l_high=1, hidden=8, layer_params=100)["predicted speed-up"] == pytest.approx(2.0)
    p = predicted_cost(2, 20, 10, l_low=4, l_high=2, hidden=576, layer_params=3_500_000)
    layer = lambda t: 2 * 3_500_000 * t + 4 * t * t * 576
    assert p["token-level FLOPs"] == 2 * (4 * layer(200) + 6 * layer(200)) and p["BAHE FLOPs"] == 2 * 6 * layer(20)


def test_measured_costs_and_their_plots(setup, synth):
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from llmrec_lite.explore.bahe import behaviour_counts, draw_bahe_point, measure_encodings, plot_costs, plot_counts

    view, pair = setup
    row = measure_encodings(view, batch_size=4, reps=1, lm=pair, **KW)
    assert row["history"] == 6 and row["token s/step"] > 0 and row["atomic s/step"] > 0
    assert row["token step MB"] > 0 and row["atomic step MB"] > 0 and 1 <= row["tokens per behaviour"] <= KW["tokens"]
    assert row["speed-up"] == pytest.approx(row["token s/step"] / row["atomic s/step"])
    assert row["speed-up low"] <= row["speed-up"] <= row["speed-up high"]
    # total memory = the step's + weights, buffers and Adam's two moments of every trainable weight
    for enc in ("token", "atomic"):
        torch.manual_seed(0)
        m = BAHE(view, encoding=enc, lm=pair, **KW)
        held = sum(t.numel() * t.element_size() for t in [*m.parameters(), *m.buffers()])
        adam = 2 * sum(p.numel() * p.element_size() for p in m.parameters() if p.requires_grad)
        assert row[f"{enc} total MB"] == pytest.approx(row[f"{enc} step MB"] + (held + adam) / 2 ** 20, abs=1e-3)
    assert row["table build s"] > 0 and row["items"] == view.n_items
    # the timing repeats a fast step until the timed steps add up to min_seconds
    from llmrec_lite.profiling import measure_times

    ts = measure_times(lambda: None, reps=2, min_seconds=0.0)
    assert len(ts) == 2 and ts == sorted(ts)
    import time as _time

    assert len(measure_times(lambda: _time.sleep(0.01), reps=1, min_seconds=0.05)) >= 5
    cost = pd.DataFrame([{"dataset": "synthetic"} | row, {"dataset": "synthetic"} | row | {"history": 12}])
    assert len(plot_costs(cost).axes) == 3
    grid = pd.DataFrame([{"split_layer": k, "history": m, "atomic s/step": 0.1 * k, "token s/step": 0.5 * k * m,
                          "atomic step MB": 10.0 * m, "auc": 0.6 + 0.01 * k} for k in (1, 2) for m in (5, 10)])
    fig = draw_bahe_point(grid, 2, 10)
    assert len(fig.axes) == 4 and "split at layer 2, history 10" in fig._suptitle.get_text()
    # the live explorer: a missing point is measured once and kept, a present one never re-measured
    from llmrec_lite.explore.bahe import bahe_widget, grid_point

    calls = []
    fake = lambda k, m: calls.append((k, m)) or {"atomic s/step": 1.0, "token s/step": 9.0, "atomic step MB": 3.0}
    assert grid_point(grid, 2, 10, fake) is grid and not calls
    bigger = grid_point(grid, 3, 20, fake)
    assert calls == [(3, 20)] and len(bigger) == 5 and np.isnan(bigger.iloc[-1]["auc"])
    assert bigger.iloc[-1][["split_layer", "history", "token s/step"]].tolist() == [3, 20, 9.0]
    assert grid_point(grid, 3, 20) is grid  # nothing to measure with: the grid as it is
    ui = bahe_widget(grid, fake, split_layers=(4,), histories=(50,))
    assert ui.children[0].options == (1, 2, 4) and ui.children[1].options == (5, 10, 50)
    assert (ui.children[0].value, ui.children[1].value) == (1, 5) and calls == [(3, 20)]  # opens on the grid
    ui = bahe_widget(grid, split_layer=2, history=10)
    assert (ui.children[0].value, ui.children[1].value) == (2, 10)
    assert plot_counts({"synthetic": behaviour_counts(synth, (2, 4))}).axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="have 50 behaviours"):
        measure_encodings(ctr_view(synth, max_history=50), batch_size=4, reps=1, lm=pair, **KW)


def test_sink_prefixes_the_mean_first_token_state(setup):
    """sink=True (the default): every BAHE sequence starts with S = the lower layers' first-token state averaged over the
    behaviours; S is never the readout (an empty sequence still gives 0), padding and batch mates change nothing,
    and token level (which has its own first token) ignores the option."""
    view, pair = setup
    tok = BAHE(view, lm=pair, encoding="token", **KW).eval()
    m = BAHE(view, lm=pair, sink=True, **KW).eval()
    with torch.no_grad():
        firsts = []
        for i in range(view.n_items):
            mask = tok.tok_mask[i + 1]
            x = tok.lower(tok.lower.embed(tok.tok_ids[i + 1][mask][None]), torch.ones(1, int(mask.sum()), dtype=torch.long))
            firsts.append(x[0, 0])
        assert torch.allclose(m.sink, torch.stack(firsts).mean(0), atol=1e-4)
        ids = torch.tensor([[0, 3, 5], [0, 0, 0], [2, 0, 7]])
        q = m.sequence_states(ids)
        assert torch.equal(q[1], torch.zeros_like(q[1]))
        by_hand = m.upper(torch.cat([m.sink[None], m.atoms[[2, 7]]])[None], torch.ones(1, 3, dtype=torch.long))[0, -1]
        assert torch.allclose(q[2], by_hand, atol=1e-5)
        plain = BAHE(view, lm=pair, sink=False, **KW).eval()
        plain.load_state_dict({k: v for k, v in m.state_dict().items() if k != "sink"})
        assert not torch.allclose(plain.sequence_states(ids)[0], q[0])  # the prefix changes what the layers read
        b = batch(view, range(8))
        p = m.predict(b)
        wide = dict(b, hist=torch.cat([torch.zeros(8, 4, dtype=torch.long), b["hist"]], 1),
                    hist_label=torch.cat([torch.full((8, 4), -1), b["hist_label"]], 1))
        assert torch.allclose(m.predict(wide), p, atol=1e-5)
        assert torch.allclose(m.predict({k: v[2:3] for k, v in b.items()}), p[2:3], atol=1e-5)
    assert BAHE(view, lm=pair, encoding="token", sink=True, **KW).sink is None


def test_tables_from_one_pass_equal_separate_passes_and_are_cached(setup, tmp_path, monkeypatch):
    """behaviour_tables: the pooled table and S's first-token states from ONE lower-layer pass, each equal to its own
    pass and cached as that pass caches it (a second model reads both from disk, running no layer)."""
    view, pair = setup
    texts = view.dataset.item_texts
    monkeypatch.setenv("LLMREC_CACHE_DIR", str(tmp_path))
    args = (texts, "smollm2", pair, "tiny-bahe", KW["split_layer"], KW["tokens"])
    both = BAHE.behaviour_tables(*args, ["mean", "first"])
    for p in ("mean", "first"):
        alone = BAHE.behaviour_table(texts, "smollm2", pair, None, KW["split_layer"], KW["tokens"], pooling=p)  # uncached
        assert np.allclose(both[p], alone, atol=1e-5)
    calls = []
    hook = pair[1].model.layers[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        m = BAHE(view, lm=pair, identity="tiny-bahe", **KW)
    finally:
        hook.remove()
    assert calls == []  # both tables came from the cache
    assert torch.allclose(m.atoms[1:], torch.from_numpy(both["mean"])) and torch.allclose(m.sink, torch.from_numpy(both["first"]).mean(0))


def test_bahes_pooling_never_changes_the_token_level_baselines_inputs(setup):
    """Token level reads only its target from a table, pooled by its own target_pooling: BAHE's pooling setting
    builds the very same baseline (every tensor equal); its own target_pooling does change the target table."""
    view, pair = setup
    built = {}
    for pooling in ("mean", "mean_skip_first"):
        torch.manual_seed(1)
        built[pooling] = BAHE(view, lm=pair, encoding="token", pooling=pooling, **KW).state_dict()
    a, b = built["mean"], built["mean_skip_first"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(1)
    own = BAHE(view, lm=pair, encoding="token", target_pooling="mean_skip_first", **KW).state_dict()
    assert not torch.equal(own["atoms"], a["atoms"])
    torch.manual_seed(1)   # BAHE itself still reads its pooling
    bahe_skip = BAHE(view, lm=pair, encoding="atomic", pooling="mean_skip_first", sink=False, **KW).state_dict()
    assert torch.equal(bahe_skip["atoms"], own["atoms"])
    with pytest.raises(ValueError, match="unknown target_pooling 'last'"):
        BAHE(view, lm=pair, encoding="token", target_pooling="last", **KW)


def test_cost_grid_measures_each_point_builds_the_table_once_and_round_trips_the_store(synth, tmp_path, monkeypatch):
    import llmrec_lite.explore.bahe as eb

    calls = []

    def fake(view, batch_size, reps, device, min_seconds, build_table, **lm):
        calls.append((view.max_history, build_table, batch_size, lm["tokens"]))
        if view.max_history == 50:
            raise ValueError("only 3 train rows have 50 behaviours")
        return {"history": view.max_history, "token s/step": 1.0, "atomic s/step": 0.25, "speed-up": 4.0}

    monkeypatch.setattr(eb, "measure_encodings", fake)
    cost = eb.cost_grid({"synthetic": synth}, datasets=("synthetic",), histories=(5, 10, 50), users=10 ** 6,
                        build_at=("synthetic", 10), lm={"split_layer": 1, "upper_layers": 1, "tokens": 7}, progress=False)
    assert calls == [(5, False, 8, 7), (10, True, 8, 7), (50, False, 8, 7)]  # the cold build at build_at only
    assert cost["history"].tolist() == [5, 10] and cost["dataset"].unique().tolist() == ["synthetic"]  # 50 skipped
    monkeypatch.setenv("LLMREC_EVIDENCE", str(tmp_path / "e.jsonl"))
    eb.save_cost_grid(cost, "python benchmarks/bahe_cost.py --histories 5 10")
    eb.save_cost_grid(cost.iloc[:1], "again")  # replaces the table, keeps nothing of the first
    back = eb.load_cost_grid()
    assert back.to_dict("records") == cost.iloc[:1].to_dict("records") and back.attrs["command"] == "again"
