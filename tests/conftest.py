import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "csaw-hackml-2020"
LAB3_WEIGHTS = SHARED / "lab3" / "bd_weights.h5"


@pytest.fixture
def lab3_weights():
    if not LAB3_WEIGHTS.is_file():
        pytest.skip(f"{LAB3_WEIGHTS} not present (../shared is beside the repo in CI)")
    return LAB3_WEIGHTS
