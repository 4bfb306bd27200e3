"""tlcourse.elmo (chapter 3): ScalarMix, the biLM's directions, characters, padding."""
import numpy as np
import pytest
import torch

from tlcourse import elmo


def test_scalar_mix_hand_computation_and_gradients():
    layers = torch.randn(3, 2, 4, 5)
    mix = elmo.ScalarMix(3)
    with torch.no_grad():
        mix.w.copy_(torch.tensor([0.5, -1.0, 2.0]))
        mix.gamma.fill_(1.7)
    s = np.exp([0.5, -1.0, 2.0]) / np.exp([0.5, -1.0, 2.0]).sum()
    expected = 1.7 * sum(float(s[j]) * layers[j] for j in range(3))
    out = mix(layers)
    assert torch.allclose(out, expected, atol=1e-6)
    assert mix.weights.sum().item() == pytest.approx(1.0)
    out.sum().backward()
    assert mix.w.grad is not None and mix.w.grad.abs().sum() > 0 and mix.gamma.grad.abs() > 0
    with pytest.raises(ValueError, match="built for 3 layers, got a stack of 2"):
        mix(layers[:2])


def test_scalar_mix_layer_norm_ignores_masked_positions():
    layers = torch.randn(2, 3, 4, 6) * torch.tensor([1.0, 50.0])[:, None, None, None] + 10
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]])
    mix = elmo.ScalarMix(2, layer_norm=True)
    normed = elmo._masked_layer_norm(layers[1], mask)
    real = normed[mask.bool()]
    assert real.mean().abs() < 1e-5 and (real.var(unbiased=False) - 1).abs() < 1e-4
    assert torch.isfinite(mix(layers, mask)).all()


def _model(seed=0):
    torch.manual_seed(seed)
    return elmo.BiLM(10_000, elmo.BiLMConfig(dim=16, filters=((1, 8), (3, 8)))).eval()


def test_backward_sees_only_the_right_context_and_forward_only_the_left():
    model = _model()
    a = [["w1", "w2", "w3", "w4", "w5", "w6"]]
    left = [["x9", "x8", "w3", "w4", "w5", "w6"]]    # positions 0-1 changed
    right = [["w1", "w2", "w3", "w4", "y7", "y8"]]   # positions 4-5 changed
    lengths = torch.tensor([6])
    with torch.no_grad():
        _, fa, ba = model.directions(elmo.char_ids(a), lengths)
        _, fl, bl = model.directions(elmo.char_ids(left), lengths)
        _, fr, br = model.directions(elmo.char_ids(right), lengths)
    for layer in range(2):
        assert torch.allclose(ba[layer][0, 2:], bl[layer][0, 2:])       # backward at 2.. ignores the left
        assert not torch.allclose(fa[layer][0, 2:], fl[layer][0, 2:])   # forward does not
        assert torch.allclose(fa[layer][0, :4], fr[layer][0, :4])       # forward at ..3 ignores the right
        assert not torch.allclose(ba[layer][0, :4], br[layer][0, :4])


def test_padding_does_not_change_real_positions_and_shapes():
    model = _model()
    short = ["a", "short", "one"]
    long = ["a", "much", "longer", "sentence", "with", "seven", "words"]
    with torch.no_grad():
        alone = model.layers(elmo.char_ids([short]), torch.tensor([3]))
        batch = model.layers(elmo.char_ids([long, short]), torch.tensor([7, 3]))
    assert batch.shape == (3, 2, 7, 32)
    assert torch.allclose(alone[:, 0], batch[:, 1, :3], atol=1e-6)


def test_characters_cover_unseen_words():
    ids = elmo.char_ids([["zyxwvut", "ünïcødé", "a"]], max_chars=6)
    assert ids.shape == (1, 3, 6)
    assert ids[0, 0].tolist() == [elmo.BOW, 3 + ord("z"), 3 + ord("y"), 3 + ord("x"), 3 + ord("w"), elmo.EOW]
    assert ids[0, 2].tolist() == [elmo.BOW, 3 + ord("a"), elmo.EOW, 0, 0, 0]
    with torch.no_grad():
        enc = _model().encoder(ids)
    assert torch.isfinite(enc).all() and not torch.allclose(enc[0, 0], enc[0, 1])


def test_reverse_padded():
    x = torch.arange(12.0).view(2, 3, 2)
    out = elmo.reverse_padded(x, torch.tensor([3, 2]))
    assert out[0].tolist() == x[0].flip(0).tolist()
    assert out[1].tolist() == [x[1, 1].tolist(), x[1, 0].tolist(), x[1, 2].tolist()]
    assert torch.equal(elmo.reverse_padded(out, torch.tensor([3, 2])), x)


def test_language_model_losses_fall_on_a_tiny_corpus():
    torch.manual_seed(0)
    vocab = ["<unk>", "<s>", "</s>", "the", "cat", "sat", "dog", "ran"]
    model = elmo.BiLM(len(vocab), elmo.BiLMConfig(dim=16, filters=((1, 8), (2, 8)), cutoffs=(4,)))
    stoi = {w: i for i, w in enumerate(vocab)}
    sentences = [["<s>", "the", "cat", "sat", "</s>"], ["<s>", "the", "dog", "ran", "</s>"]]
    chars = elmo.char_ids(sentences)
    words = torch.tensor([[stoi[w] for w in s] for s in sentences])
    lengths = torch.tensor([5, 5])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(60):
        fwd, bwd = model.lm_losses(chars, words, lengths)
        first = first if first is not None else (fwd.item(), bwd.item())
        opt.zero_grad()
        (fwd + bwd).backward()
        opt.step()
    assert fwd.item() < 0.5 * first[0] and bwd.item() < 0.5 * first[1]
