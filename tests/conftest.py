import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
_shared = Path(__file__).resolve().parents[2] / "shared" / "data"
if "LLMREC_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["LLMREC_DATA_DIR"] = str(_shared)


def _real_data(name):
    from llmrec_lite.config import data_root

    if not (data_root() / name).is_dir():
        msg = f"{name} not available under {data_root()}: set LLMREC_DATA_DIR"
        if os.environ.get("LLMREC_REQUIRE_DATA", "0") not in ("", "0"):
            pytest.fail(msg + " (LLMREC_REQUIRE_DATA is set: CI never skips a test for missing data)")
        pytest.skip(msg)


@pytest.fixture(scope="session")
def ml100k():
    _real_data("ml-100k")
    from llmrec_lite.data import load_dataset

    return load_dataset("ml-100k", verbose=False)


@pytest.fixture(scope="session")
def pantry():
    _real_data("amazon-prime-pantry")
    from llmrec_lite.data import load_dataset

    return load_dataset("amazon-pantry", verbose=False)


@pytest.fixture(scope="session")
def synth():
    from llmrec_lite.data import synthetic_dataset

    return synthetic_dataset()


@pytest.fixture(scope="session")
def ml1m():
    _real_data("ml-1m")
    from llmrec_lite.data import load_dataset

    return load_dataset("ml-1m", verbose=False)


@pytest.fixture(scope="session")
def scientific():
    _real_data("amazon-scientific")
    from llmrec_lite.data import load_dataset

    return load_dataset("amazon-scientific", verbose=False)
