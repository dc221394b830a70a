"""Shared fixtures: the committed workbook read once per session, a synthetic workbook builder, a small
real workbook on disk, and one thread per library (the tests share two cores with other jobs)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from analysis.dataset import SHEETS, load_dataset  # noqa: E402
from analysis.design import EXTRA_FEATURES, TARGETS, recipe_groups  # noqa: E402
from analysis.mmd import MMD_COLUMNS  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # two cores shared with other jobs: OpenMP/BLAS oversubscription makes boosted trees ~20x slower
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def data() -> pd.DataFrame:
    """The committed workbook's `compuesta` sheet, validated."""
    return load_dataset()


def toy_workbook(n_recipes: int = 20, times: int = 4, seed: int = 0) -> pd.DataFrame:
    """Synthetic rows in the workbook's schema: recipes on the design's levels, `times` samples each,
    random positive MMDs (no physics: for schema, splitting and bookkeeping tests)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_recipes):
        base = [0.5 + 0.5 * (r % 6), 0.0025 * (1 + r % 8), 60.0 + r % 9]
        for t in range(1, times + 1):
            extras = [base[0] * (1 - 0.05 * t), 1e4 + r, 2e4 + r]
            rows.append(base + [300.0 * t] + extras + list(rng.random(100)))
    return pd.DataFrame(rows, columns=TARGETS + EXTRA_FEATURES + MMD_COLUMNS)


@pytest.fixture
def toy():
    return toy_workbook


@pytest.fixture(scope="session")
def finder_models() -> dict:
    """The finder's fitted machine-learning models, shared by the tests of one worker (`find_recipe`
    fits each feature set once and keeps it here)."""
    return {}


@pytest.fixture(scope="session")
def small_workbook(tmp_path_factory, data):
    """A real workbook file of 54 of the 432 recipes (all rows of each), in the study's two sheets."""
    small = data[recipe_groups(data) % 8 == 0]
    path = tmp_path_factory.mktemp("small") / "small.xlsx"
    with pd.ExcelWriter(path) as writer:
        for sheet, columns in SHEETS.items():
            small[columns].to_excel(writer, sheet_name=sheet, index=False)
    return path
