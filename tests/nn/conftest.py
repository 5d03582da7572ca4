"""Fixtures of the torch tests (defined only when torch is installed; the test modules that need
it skip themselves with ``pytest.importorskip``, while ``test_optional_torch.py`` runs anyway)."""

import importlib.util

import pytest

if importlib.util.find_spec("torch") is not None:
    import torch

    from tests.nn._helpers import TinyNet

    @pytest.fixture
    def tiny_model():
        torch.manual_seed(0)
        return TinyNet()
