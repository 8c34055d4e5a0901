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


def attribute_prompt(attributes: dict, image: str | None = None, max_chars: int = 300) -> str:
    """An item's structured attributes as the text Molar's item model reads, one "Name: value" line each
    (empty values skipped; lists joined with " > ", e.g. a category path; long values cut at ``max_chars``):

        Title: Stanley TRA708T Sharpshooter Staples
        Brand: Stanley
        Category: Fasteners > Collated Fasteners > Staples

    ``image``: a multimodal LM's image placeholder (e.g. Qwen2-VL's "<|image_pad|>") put first, for a
    processor that also receives the image. No image is available offline: not exercised here."""
    lines = [image] if image else []
    for name, value in attributes.items():
        if isinstance(value, (list, tuple)):
            value = " > ".join(str(v) for v in value if str(v).strip())
        value = " ".join(str(value).split()) if value is not None and str(value) not in ("<NA>", "nan", "None") else ""
        if value:
            lines.append(f"{name}: {value[:max_chars]}")
    return "\n".join(lines)


def user_prompt(titles: Sequence[str], max_items: int = 20) -> str:
    """A user's history as text (most recent last), e.g. for LLM user embeddings (LLM-ESR)."""
    recent = list(titles)[-max_items:]
    return "The user interacted with: " + "; ".join(recent) + "."
