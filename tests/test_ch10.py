"""Chapter 10's protocol pieces that need no pretraining: the episode measures on features whose
answer is known, the text scores, SimCSE's loss, and clear errors for unknown names."""

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from tlcourse import ssl
from tlcourse.chapters import ch10_selfsup as ch


def _separable(n_classes=6, per_class=8, dim=16, noise=0.05, seed=0):
    """Features of ``n_classes`` classes: one unit vector per class plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(n_classes, dim, generator=g), dim=1)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return F.normalize(
        centres[labels] + noise * torch.randn(len(labels), dim, generator=g), dim=1
    ), labels


def _episodes(labels, n_way, k_shot, queries, count, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        classes = torch.randperm(int(labels.max()) + 1, generator=g)[:n_way]
        support, query = [], []
        for c in classes.tolist():
            pool = torch.nonzero(labels == c).flatten()
            picked = pool[torch.randperm(len(pool), generator=g)[: k_shot + queries]]
            support.append(picked[:k_shot]), query.append(picked[k_shot:])
        out.append((torch.cat(support), torch.cat(query)))
    return out


@pytest.mark.parametrize("rule, k_shot", [("prototype", 1), ("probe", 3)])
def test_episode_measures_are_perfect_on_separable_and_chance_on_shuffled_features(rule, k_shot):
    features, labels = _separable()
    drawn = _episodes(labels, 5, k_shot, 4, 40)
    assert ch.episode_accuracies(features, drawn, 5, k_shot, rule, 4) == [1.0] * 40
    noise = F.normalize(
        torch.randn(features.shape, generator=torch.Generator().manual_seed(1)), dim=1
    )
    mean = sum(ch.episode_accuracies(noise, drawn, 5, k_shot, rule, 4)) / 40
    assert 0.1 < mean < 0.35  # 5 ways: chance is 0.2


def test_text_scores_on_separable_features():
    train, y_train = _separable(4, 20, seed=2)
    test, y_test = _separable(4, 10, seed=2)
    scores = ch.text_scores(train, y_train, test, y_test)
    assert scores["1-NN"] == scores["10-NN"] == scores["probe"] == 1.0
    same = F.normalize(torch.ones(8, 4), dim=1)
    assert ch.text_scores(same, torch.arange(8) % 2, same, torch.arange(8) % 2)[
        "mean cosine"
    ] == pytest.approx(1.0)


def test_simcse_loss_needs_dropout_to_have_a_positive_pair():
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    torch.manual_seed(0)
    model = BertModel(config)

    def tokenizer(sentences, **kwargs):
        ids = torch.tensor([[1 + sum(map(ord, w)) % 48 for w in s.split()][:6] for s in sentences])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    sentences = ["a b c d e f", "b c d e f g", "c d e f g h", "x y z a b c"]
    model.eval()  # no dropout: the two encodings are equal, the loss is InfoNCE of cos(h_i, h_j)
    h = F.normalize(ch._pooled(model, tokenizer, sentences, 6), dim=1)
    expected = ssl.info_nce(h @ h.T / 0.05)
    assert torch.allclose(ch.simcse_loss(model, tokenizer, sentences, 0.05, 6), expected)
    model.train()  # dropout: two different views, a different loss
    assert not torch.allclose(ch.simcse_loss(model, tokenizer, sentences, 0.05, 6), expected)


def test_unknown_names_are_clear_errors():
    cfg = ch.CONFIGS["cpu"]
    with pytest.raises(ValueError, match="unknown method 'moco'"):
        ch.pretrained_encoder("moco", cfg, 0)
    with pytest.raises(ValueError, match="unknown knob 'lr'"):
        ch.knob_runs(cfg, "lr")
    with pytest.raises(ValueError, match="unknown rule 'knn'"):
        ch.episode_accuracies(torch.zeros(4, 2), [], 2, 1, "knn", 1)


def test_profiles_use_known_augmentations_and_batches_that_split():
    for name, cfg in ch.CONFIGS.items():
        assert set(cfg.augmentations) <= set(ssl.AUGMENTATIONS), name
        assert cfg.temperature in cfg.temperatures and cfg.batch in cfg.knob_batches, name
        assert all(b % 4 == 0 and cfg.steps * cfg.batch % b == 0 for b in cfg.knob_batches), name
        assert cfg.seeds >= 3 and min(cfg.ways) >= 2, name


def test_new_characters_share_no_alphabet_with_the_pretraining_images():
    from tlcourse.data import load_omniglot

    images, labels, kept = ch.new_characters()
    seen = set(load_omniglot(ch.PRETRAIN_PART)["alphabet"])
    assert kept and not seen & set(kept)  # small1 and small2 share Greek and Latin: left out
    assert images.shape[0] == labels.shape[0] == 20 * len(labels.unique()) < 3120
