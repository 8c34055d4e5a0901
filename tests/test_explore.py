"""The explorers' live widget: one output redrawn in place, no figure left open (a stale copy under the
widget), the box itself as the cell's value, and draws only when asked for."""
import matplotlib

matplotlib.use("Agg")
import ipywidgets as w  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from llmrec_lite.explore import explorer, gain_widget  # noqa: E402


def rec(v):
    metrics = {m: v for m in ("ndcg@10", "hr@10", "ndcg@20", "hr@20")}
    groups = {g: metrics | {"n_users": 1} for g in ("tail_users", "head_users", "tail_items", "head_items")}
    return {"metrics": metrics | {"by_group": groups}}


def test_explorer_redraws_on_change_and_closes_every_figure():
    plt.close("all")
    seen = []

    def draw(n, label):
        seen.append((n, label))
        fig, ax = plt.subplots()
        ax.plot(range(n))
        ax.set_title(label)
        return fig, {"n": n}

    box = explorer(draw, n=w.IntSlider(value=3, min=1, max=9), label=w.Dropdown(options=["a", "b"], value="a"))
    assert isinstance(box, w.VBox) and not callable(box)
    assert box.draws == 1 and seen == [(3, "a")] and plt.get_fignums() == []
    assert [c.description for c in box.children[:2]] == ["n", "label"] and box.children[-1] is box.output
    box.controls["label"].value = "b"
    box.controls["n"].value = 5
    assert seen == [(3, "a"), (3, "b"), (5, "b")] and box.draws == 3
    assert box.result[1] == {"n": 5} and box.result[0].axes[0].get_title() == "b"
    assert plt.get_fignums() == []  # nothing for the inline backend to show again at the end of the cell


def test_manual_explorer_draws_only_when_run():
    seen = []
    box = explorer(lambda x: seen.append(x) or pd.DataFrame({"x": [x]}), manual=True, x=w.IntSlider(value=2))
    assert box.draws == 0 and seen == []
    box.controls["x"].value = 4
    assert seen == []
    run = [c for c in box.children if isinstance(c, w.Button)]
    assert len(run) == 1 and run[0].description == "Run"
    run[0].click()
    assert seen == [4] and box.draws == 1 and box.result["x"].tolist() == [4]


def test_gain_widget_is_a_live_explorer():
    plt.close("all")
    box = gain_widget({"base": rec(0.1), "a": rec(0.12), "b": rec(0.05)}, "base")
    assert box.draws == 1 and plt.get_fignums() == []
    assert "ndcg@10" in box.result.axes[0].get_title()
    box.controls["metric"].value = "hr@20"
    assert box.draws == 2 and "hr@20" in box.result.axes[0].get_title()
    with pytest.raises(ValueError, match="no record named 'base'"):
        gain_widget({"a": rec(0.1)}, "base")


def test_leaderboard_chart_orders_bars_and_marks_stale_runs():
    from llmrec_lite.explore.side_by_side import leaderboard_widget, plot_leaderboard

    board = pd.DataFrame([
        {"model": "sasrec", "paper": "baseline", "dataset": "d", "split": "loo", "seeds": 3, "ndcg@10": 0.10,
         "ndcg@10 std": 0.01, "stale": False, "auc": float("nan")},
        {"model": "pad", "paper": "PAD", "dataset": "d", "split": "loo", "seeds": 1, "ndcg@10": 0.12,
         "ndcg@10 std": float("nan"), "stale": True, "auc": float("nan")},
        {"model": "din", "paper": "baseline", "dataset": "d", "split": "ctr", "seeds": 1, "ndcg@10": float("nan"),
         "ndcg@10 std": float("nan"), "stale": False, "auc": 0.7, "auc std": float("nan")}])
    fig = plot_leaderboard(board, "d", "loo")
    ax = fig.axes[0]
    at = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    assert at["pad † (1 seed)"] > at["sasrec (3 seeds)"]  # best on top
    widths = {round(p.get_width(), 4): p.get_hatch() for p in ax.patches if p.get_width() > 0}
    assert widths == {0.12: "//", 0.1: None}
    with pytest.raises(ValueError, match="no stored runs with auc on d / loo"):
        plot_leaderboard(board, "d", "loo", "auc")
    plt.close("all")
    box = leaderboard_widget(board)
    assert box.draws == 1 and box.controls["view"].value == ("d", "loo") and plt.get_fignums() == []  # ranking first
    assert box.result.axes[0].get_title() == "d · loo"
    box.controls["view"].value = ("d", "ctr")  # ndcg@10 has nothing to show on the CTR view: one line, no traceback
    assert box.draws == 2 and isinstance(box.result, ValueError) and plt.get_fignums() == []
    box.controls["metric"].value = "auc"
    assert box.draws == 3 and box.result.axes[0].get_title() == "d · ctr"


def test_atlas_marks_an_items_neighbours_in_both_spaces():
    import numpy as np

    from llmrec_lite.explore.side_by_side import atlas_maps, draw_atlas, space_summary

    rng = np.random.default_rng(0)
    base = rng.standard_normal((30, 8))
    lm = base.copy()
    model = base.copy()
    model[1] = model[0] + 0.01  # in the model space item 1 is item 0's nearest neighbour
    lm[2] = lm[0] + 0.01  # in the LM space item 2 is
    spaces = {"model": model, "lm": lm}
    titles = [f"item {i}" for i in range(30)]
    labels = {"genre": np.array(["a", "b"] * 15)}
    maps = atlas_maps(spaces)
    assert maps["model"].shape == (30, 2)
    fig, table = draw_atlas(spaces, maps, labels, titles, "model", "lm", "genre", item=0, k=3)
    assert table["nearest in model"].iloc[0] == "item 1" and table["nearest in lm"].iloc[0] == "item 2"
    assert "item 0" in fig._suptitle.get_text()
    summary = space_summary(spaces, labels, reference="lm", k=3)
    assert summary.loc["lm", "neighbours shared with lm"] == 1.0 and 0 <= summary.loc["model", "neighbours shared with lm"] < 1
    with pytest.raises(ValueError, match="same items"):
        atlas_maps({"a": base, "b": base[:10]})
    with pytest.raises(ValueError, match="out of range"):
        draw_atlas(spaces, maps, labels, titles, "model", "lm", "genre", item=30)
    plt.close("all")


def test_cost_growth_fits_a_line_per_model_and_never_joins_datasets():
    import numpy as np
    from llmrec_lite.explore.side_by_side import cost_fits, plot_cost_growth

    rows = pd.DataFrame({"model": ["mf", "mf", "sasrec", "sasrec"], "dataset": ["a", "b", "a", "b"],
                         "interactions": [1e5, 1e6, 1e5, 1e6], "s/epoch": [0.1, 1.0, 10.0, 0.0]})
    # log 0.1 = 1 * log 1e5 + b  ->  b = log 1e-6; sasrec has one timed size: no fit
    fits = cost_fits(rows)
    assert list(fits) == ["mf"] and np.allclose(fits["mf"], (1.0, np.log(1e-6)))
    ax = plot_cost_growth(rows, reference={"RecBole SASRec": (1e5, 181.0)}).axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # mf: 0.1 s at 1e5 and 1.0 s at 1e6, so the fitted log-log slope is exactly 1 (the only drawn line);
    # sasrec keeps one point (a zero-second row cannot sit on a log axis) and gets no line
    (line,) = ax.get_lines()
    assert line.get_linestyle() == "--" and np.allclose(line.get_ydata(), [0.1, 1.0])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["mf (slope 1.00)", "sasrec", "a", "b"]
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == 3 + 1   # three timed points and the reference cross, each a marker, none joined
    plt.close("all")


def test_probe_bars_show_the_gaps_and_keep_the_legend_off_the_bars():
    from llmrec_lite.explore.alpharec import plot_probe_bars

    recs = [{"label": "minilm (linear)", "metrics": {"recall@20": 0.31}},
            {"label": "random (linear)", "metrics": {"recall@20": 0.30}}]
    fig = plot_probe_bars(recs, references={"MF-BPR": 0.35})
    ax = fig.axes[0]
    left, right = ax.get_xlim()
    assert 0.29 < left < 0.30 and right > 0.35          # from 0 the 0.01 gap would be a hair's width
    assert "axis from" in ax.get_xlabel()
    anchor = ax.get_legend().get_bbox_to_anchor().transformed(ax.transAxes.inverted())
    assert anchor.x0 >= 1.0                              # the legend sits beside the axes
    plt.close(fig)
