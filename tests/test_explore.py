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
