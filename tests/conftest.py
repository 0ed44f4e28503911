from __future__ import annotations

import pytest

from trialrun.store import Store


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'runs.db'}")
