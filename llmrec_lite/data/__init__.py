"""Datasets: loaders, preprocessing and split protocols."""
from __future__ import annotations

from .amazon import load_amazon2023, load_amazon_pantry, load_amazon_scientific
from .dataset import DataError, Dataset, build_dataset
from .movielens import load_ml1m, load_ml100k
from .recbole import load_recbole_atomic, read_atomic
from .split import CTRSplit, Split, ctr_view, hold_out_items, leave_one_out, make_split, random_split
from .synthetic import synthetic_dataset

LOADERS = {
    "ml-100k": load_ml100k,
    "ml-1m": load_ml1m,
    "amazon-pantry": load_amazon_pantry,
    "amazon-scientific": load_amazon_scientific,
}


def load_dataset(name: str, root=None, min_rating: float | None = None, k_core: int = 0,
                 verbose: bool = True) -> Dataset:
    """Load a dataset by name, apply the implicit-feedback threshold and k-core filter, and print
    (and keep, in ``ds.stats()``) its statistics after filtering."""
    if name == "synthetic":
        ds = synthetic_dataset()
    elif name in LOADERS:
        ds = LOADERS[name](root)
    else:
        raise ValueError(f"unknown dataset {name!r}; valid: {sorted(LOADERS) + ['synthetic']}")
    ds = ds.implicit(min_rating).k_core(k_core)
    if verbose:
        print(ds.describe())
    return ds


__all__ = ["CTRSplit", "DataError", "Dataset", "LOADERS", "Split", "build_dataset", "ctr_view",
           "leave_one_out", "load_amazon2023", "load_amazon_pantry", "load_amazon_scientific", "load_recbole_atomic", "read_atomic", "load_dataset", "load_ml100k",
           "hold_out_items", "load_ml1m", "make_split", "random_split", "synthetic_dataset"]
