"""Shared fixtures. Tests that need ../shared (real data, the ONNX detector) skip with a reason without it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present (CI provides it beside the checkout)")
    return SHARED


@pytest.fixture(scope="session")
def yolox_model(shared_dir: Path) -> Path:
    path = shared_dir / "models" / "yolox_nano" / "yolox_nano.onnx"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture(scope="session")
def hololens_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "hololens_office"
    if not (path / "poses.txt").is_file():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one thread is faster, and a shared CPU punishes spinning thread pools."""
    import torch  # local: most tests never touch torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
