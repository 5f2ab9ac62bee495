"""Shared fixtures: tiny scenes written in tmp_path, and the location of shared real data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_7SCENES = REPO.parent / "shared" / "data" / "7scenes-redkitchen"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip cleanly (one reason line) where torch sees no CUDA device."""
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh on a GPU machine)")
    for item in marked:
        item.add_marker(skip)


@pytest.fixture
def seven_scenes() -> Path:
    if not (SHARED_7SCENES / "frame-000000.pose.txt").is_file():
        pytest.skip(f"real 7-Scenes frames not present at {SHARED_7SCENES}")
    return SHARED_7SCENES


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A tiny randomly initialised CLIP (real architecture) saved with save_pretrained: no download."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["."]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=40,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=24,
    )
    path = tmp_path_factory.mktemp("clip-tiny")
    CLIPModel(cfg).eval().save_pretrained(path)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(path)
    return path
