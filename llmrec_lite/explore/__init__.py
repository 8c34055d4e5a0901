"""Explorers for the notebooks, one module per notebook (``alpharec``, ``llmesr``, ``pad``, ``molar``, ``bahe``, ``llmcf``)
plus ``common``:
plain functions that train something small and draw a figure (callable in CI and in tests), and thin
ipywidgets wrappers for interactive use. Everything is importable from ``llmrec_lite.explore`` too."""
from ..metrics import difference_table
from .alpharec import (PROBES, draw_probe, intention_sweep, intention_top_k, intention_widget, plot_intention_sweep,
                       plot_probe_bars, probe, probe_label, probe_widget)
from .bahe import (bahe_widget, behaviour_counts, draw_bahe_point, grid_point, measure_encodings, plot_costs, plot_counts,
                   predicted_cost)
from .common import explorer, knn, neighbour_agreement, neighbour_overlap, plot_overlay, popularity_bins
from .llmcf import ctr_user_example, draw_llmcf_ctr_example, draw_llmcf_example, llmcf_ctr_widget, llmcf_widget, user_example
from .llmesr import gain_widget, plot_gains
from .molar import alignment_cosines, draw_molar_alignment, molar_widget, plot_alignment, plot_user_map, user_pairs
from .pad import alignment_widget, draw_alignment, plot_gate_weights, realign

__all__ = ["PROBES", "bahe_widget", "behaviour_counts", "draw_bahe_point", "grid_point", "measure_encodings", "plot_costs",
           "plot_counts", "predicted_cost", "draw_llmcf_example", "llmcf_widget", "user_example", "ctr_user_example", "draw_llmcf_ctr_example", "llmcf_ctr_widget", "alignment_cosines", "alignment_widget", "draw_molar_alignment", "molar_widget", "plot_alignment", "plot_user_map", "user_pairs", "difference_table", "draw_alignment", "explorer", "draw_probe", "gain_widget",
           "intention_sweep", "intention_top_k", "intention_widget", "knn", "neighbour_agreement", "neighbour_overlap",
           "plot_gains", "plot_gate_weights", "plot_intention_sweep", "plot_overlay", "plot_probe_bars", "popularity_bins",
           "probe", "probe_label", "probe_widget", "realign"]
