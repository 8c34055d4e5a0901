"""Popularity: every user gets the items ranked by their number of train interactions."""
from __future__ import annotations

import torch

from ..data.split import Split
from .base import Recommender


class Pop(Recommender):
    trainable = False

    def __init__(self, split: Split):
        super().__init__(split)
        self.register_buffer("popularity", torch.from_numpy(split.item_popularity).float())

    def score_all(self, users: torch.Tensor, stage: str) -> torch.Tensor:
        return self.popularity.expand(len(users), -1)
