import logging
import warnings

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")


@pytest.fixture(autouse=True, scope="session")
def _quiet_diffusers():
    warnings.filterwarnings("ignore", module="diffusers")
    logging.getLogger("diffusers").setLevel(logging.ERROR)
    yield
