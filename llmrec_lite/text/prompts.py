"""Item and user prompts: the text a language model reads for each item."""
from __future__ import annotations

from collections.abc import Sequence


def item_prompt(title: str, year=None, genres: Sequence[str] = (), description: str = "",
                max_description_chars: int = 300, brand: str = "") -> str:
    """'Toy Story (1995). Genres: Animation, Children's, Comedy.' — fields are skipped when empty."""
    text = str(title).strip()
    if year is not None and str(year) not in ("", "<NA>", "nan"):
        text += f" ({year})"
    text += "."
    if str(brand).strip():
        text += f" Brand: {str(brand).strip().rstrip('.')}."
    if len(genres):
        text += " Genres: " + ", ".join(genres) + "."
    description = " ".join(str(description).split())
    if description:
        text += " " + description[:max_description_chars]
    return text


def user_prompt(titles: Sequence[str], max_items: int = 20) -> str:
    """A user's history as text (most recent last), e.g. for LLM user embeddings (LLM-ESR)."""
    recent = list(titles)[-max_items:]
    return "The user interacted with: " + "; ".join(recent) + "."
