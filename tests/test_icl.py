"""tlcourse.icl: the linear-regression prompts, their encoding and attention mask, the model, and
the baselines it is compared with (Garg et al. 2022), checked against closed forms."""

import pytest
import torch

from tlcourse import icl


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _tiny_model(dim=3, k=4):
    torch.manual_seed(0)
    return icl.TinyGPT(icl.ICLConfig(dim=dim, k=k, width=16, layers=2, heads=2)).eval()


def test_sample_tasks_is_deterministic_with_the_right_shapes():
    xs, ys = icl.sample_tasks(8, 5, 3, _gen(1))
    assert xs.shape == (8, 6, 3) and ys.shape == (8, 6)
    xs2, ys2 = icl.sample_tasks(8, 5, 3, _gen(1))
    assert torch.equal(xs, xs2) and torch.equal(ys, ys2)
    assert not torch.equal(xs, icl.sample_tasks(8, 5, 3, _gen(2))[0])


def test_sample_tasks_x_scale_and_noise_have_the_stated_variances():
    dim, scale, noise = 4, 3.0, 0.5
    xs, ys = icl.sample_tasks(4000, 9, dim, _gen(), x_scale=scale)
    assert xs.var().item() == pytest.approx(scale**2, rel=0.05)
    # y = w . x with w ~ N(0, I): E[y^2] = dim * x_scale^2
    assert ys.pow(2).mean().item() == pytest.approx(dim * scale**2, rel=0.1)
    # same generator state: same x and w, so the difference is the noise alone
    xs_n, ys_n = icl.sample_tasks(4000, 9, dim, _gen(), x_scale=scale, noise=noise)
    assert torch.equal(xs, xs_n)
    assert (ys_n - ys).var().item() == pytest.approx(noise**2, rel=0.05)


def test_build_prompt_puts_the_examples_first_then_one_query_per_point():
    batch, k, dim = 2, 3, 4
    xs, ys = icl.sample_tasks(batch, k, dim, _gen())
    tokens = icl.build_prompt(xs, ys)
    n = k + 1
    assert tokens.shape == (batch, 2 * n - 1, dim + 2)  # n - 1 examples, then n queries
    examples, queries = tokens[:, : n - 1], tokens[:, n - 1 :]
    # example j: (x_j, y_j, 0), for the n - 1 points before the last
    assert torch.equal(examples[..., :dim], xs[:, :-1])
    assert torch.equal(examples[..., dim], ys[:, :-1])
    assert torch.all(examples[..., dim + 1] == 0)
    # query i: (x_i, 0, 1), for every point, the last included
    assert torch.equal(queries[..., :dim], xs)
    assert torch.all(queries[..., dim] == 0) and torch.all(queries[..., dim + 1] == 1)


def test_build_prompt_leaves_out_the_query_label():
    xs, ys = icl.sample_tasks(2, 3, 4, _gen())
    tokens = icl.build_prompt(xs, ys)
    changed = ys.clone()
    changed[:, -1] = 123.0
    assert torch.equal(icl.build_prompt(xs, changed), tokens)
    assert not torch.isin(ys[:, -1], tokens).any()
    assert not (tokens == 123.0).any()


def test_build_prompt_of_one_point_is_its_query_alone():
    xs, ys = icl.sample_tasks(3, 0, 2, _gen())
    tokens = icl.build_prompt(xs, ys)
    assert tokens.shape == (3, 1, 4)
    assert torch.equal(tokens[:, 0], torch.cat([xs[:, 0], torch.zeros(3, 1), torch.ones(3, 1)], 1))


def _expected_mask(n):
    """prompt_mask's specification, entry by entry (0-based): example j (token j, j < n - 1) sees
    examples 0..j; query i (token n - 1 + i) sees examples 0..i-1 and itself."""
    allowed = torch.zeros(2 * n - 1, 2 * n - 1, dtype=torch.bool)
    for j in range(n - 1):
        for e in range(j + 1):
            allowed[j, e] = True
    for i in range(n):
        for e in range(i):
            allowed[n - 1 + i, e] = True
        allowed[n - 1 + i, n - 1 + i] = True
    return allowed


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_prompt_mask_is_exactly_as_specified(n):
    mask = icl.prompt_mask(n)
    assert mask.dtype == torch.bool and mask.shape == (2 * n - 1, 2 * n - 1)
    assert torch.equal(mask, _expected_mask(n))
    assert mask.diagonal().all()  # every token sees itself: no row is all -inf


def test_prompt_mask_worked_example_and_edge_cases():
    assert icl.prompt_mask(1).tolist() == [[True]]
    # n = 3: tokens e1, e2, q1, q2, q3
    assert icl.prompt_mask(3).int().tolist() == [
        [1, 0, 0, 0, 0],  # e1 sees e1
        [1, 1, 0, 0, 0],  # e2 sees e1, e2
        [0, 0, 1, 0, 0],  # q1 sees itself alone (predicts from no examples)
        [1, 0, 0, 1, 0],  # q2 sees e1 and itself
        [1, 1, 0, 0, 1],  # q3 sees e1, e2 and itself
    ]
    for n in (0, -2):
        with pytest.raises(ValueError, match="at least 1 point"):
            icl.prompt_mask(n)


def test_prediction_i_uses_the_earlier_labels_and_never_y_i_or_later():
    model = _tiny_model()
    n = 5
    xs, ys = icl.sample_tasks(4, n - 1, 3, _gen())
    with torch.no_grad():
        base = model(icl.build_prompt(xs, ys))
        assert base.shape == (4, n)
        for i in range(n):
            later = ys.clone()
            later[:, i:] += torch.randn(4, n - i, generator=_gen(i)) * 5  # y_i and after
            assert torch.equal(model(icl.build_prompt(xs, later))[:, i], base[:, i])
            for j in range(i):  # any one earlier label moves it
                earlier = ys.clone()
                earlier[:, j] += 1.0
                moved = model(icl.build_prompt(xs, earlier))[:, i]
                assert (moved - base[:, i]).abs().min() > 1e-6, (i, j)
            # nor does a later x (x_i itself is the query, so it does move prediction i)
            later_x = xs.clone()
            later_x[:, i + 1 :] += 1.0
            assert torch.equal(model(icl.build_prompt(later_x, ys))[:, i], base[:, i])
    changed = ys.clone()
    changed[:, -1] = -50.0
    assert torch.equal(icl.model_predictions(model, xs, changed), base)


def test_model_reads_any_prompt_length_one_prediction_per_query():
    model = _tiny_model(dim=2, k=2)  # no position embeddings: k bounds nothing
    for n in (1, 3, 9):
        xs, ys = icl.sample_tasks(3, n - 1, 2, _gen(n))
        with torch.no_grad():
            assert model(icl.build_prompt(xs, ys)).shape == (3, n)
    # prediction i is the same whether or not points after i are in the prompt
    xs, ys = icl.sample_tasks(3, 8, 2, _gen())
    with torch.no_grad():
        full = model(icl.build_prompt(xs, ys))
        short = model(icl.build_prompt(xs[:, :4], ys[:, :4]))
    assert torch.allclose(full[:, :4], short, atol=1e-6)


def test_one_layer_model_treats_the_examples_as_a_set():
    # with one layer a query attends to the examples' own tokens, so their order is irrelevant
    # (with more layers the causal mask between examples makes each example's state depend on
    # the ones before it)
    torch.manual_seed(0)
    model = icl.TinyGPT(icl.ICLConfig(dim=3, k=5, width=16, layers=1, heads=2)).eval()
    xs, ys = icl.sample_tasks(4, 5, 3, _gen())
    perm = torch.tensor([3, 1, 4, 0, 2, 5])  # the query (last point) stays last
    with torch.no_grad():
        a = model(icl.build_prompt(xs, ys))[:, -1]
        b = model(icl.build_prompt(xs[:, perm], ys[:, perm]))[:, -1]
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("heads", [1, 4])
def test_masked_self_attention_agrees_with_torch_scaled_dot_product_attention(heads):
    torch.manual_seed(0)
    width, n, batch = 16, 5, 3
    attn = icl.MaskedSelfAttention(width, heads)
    h = torch.randn(batch, 2 * n - 1, width)
    mask = icl.prompt_mask(n)

    def split(t):  # (b, t, width) -> (b, heads, t, width / heads)
        return t.view(batch, -1, heads, width // heads).transpose(1, 2)

    with torch.no_grad():
        q, k, v = (split(t) for t in attn.qkv(h).split(width, dim=-1))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        expected = attn.proj(out.transpose(1, 2).reshape(batch, -1, width))
        got = attn(h, mask)
    assert got.shape == h.shape
    assert torch.allclose(got, expected, atol=1e-5)
    with torch.no_grad():  # and a plain causal mask
        causal = torch.tril(torch.ones(2 * n - 1, 2 * n - 1, dtype=torch.bool))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=causal)
        expected = attn.proj(out.transpose(1, 2).reshape(batch, -1, width))
        assert torch.allclose(attn(h, causal), expected, atol=1e-5)


def test_tiny_gpt_has_gpt2_initialisation():
    torch.manual_seed(0)
    model = icl.TinyGPT(icl.ICLConfig(dim=5, width=64, layers=2, heads=4))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 + 4 * 2  # read-in, read-out; qkv, proj and two MLP layers per block
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert weights.std().item() == pytest.approx(0.02, rel=0.03)
    assert abs(weights.mean().item()) < 1e-3
    for m in linears:
        assert m.weight.std().item() == pytest.approx(0.02, rel=0.5)  # read-out has 64 weights
        assert torch.all(m.bias == 0)
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_loss_is_the_normalised_error_averaged_over_prefixes():
    model = _tiny_model()
    xs, ys = icl.sample_tasks(6, 4, 3, _gen())
    mean, _ = icl.errors_by_k(lambda a, b: icl.model_predictions(model, a, b), xs, ys)
    with torch.no_grad():
        assert icl.icl_loss(model, (xs, ys)).item() == pytest.approx(mean.mean().item(), rel=1e-5)


def test_errors_by_k_of_predicting_zero_is_about_one_with_its_standard_error():
    xs, ys = icl.sample_tasks(3000, 3, 5, _gen())
    mean, se = icl.errors_by_k(lambda a, b: torch.zeros_like(b), xs, ys)
    assert mean.shape == se.shape == (4,)
    assert torch.allclose(mean, torch.ones(4), atol=0.1)
    err = ys**2 / 5
    assert torch.allclose(se, err.std(0) / 3000**0.5)


def test_least_squares_is_lstsq_when_overdetermined_and_min_norm_when_not():
    xs, ys = icl.sample_tasks(4, 7, 3, _gen(), noise=0.3)
    preds = icl.least_squares(xs, ys)
    for i in (5, 7):  # more points than dimensions
        w = torch.linalg.lstsq(xs[:, :i].double(), ys[:, :i, None].double()).solution
        expected = (xs[:, i].double().unsqueeze(1) @ w).flatten()
        assert torch.allclose(preds[:, i].double(), expected, atol=1e-4)
    i = 2  # fewer points than dimensions: w = X^T (X X^T)^-1 y, the interpolant of least norm
    x, y = xs[:, :i].double(), ys[:, :i, None].double()
    w = x.mT @ torch.linalg.solve(x @ x.mT, y)
    assert torch.allclose(preds[:, i].double(), (xs[:, i].double().unsqueeze(1) @ w).flatten(),
                          atol=1e-4)  # fmt: skip
    assert torch.all(preds[:, 0] == 0)


def test_noiseless_least_squares_is_exact_from_dim_points_and_the_others_are_not():
    dim, k = 4, 10
    xs, ys = icl.sample_tasks(500, k, dim, _gen())
    lsq, _ = icl.errors_by_k(icl.least_squares, xs, ys)
    assert lsq[dim:].max().item() < 1e-4
    assert lsq[1:dim].min().item() > 0.1  # too few points to pin w down
    for other in (icl.averaging, icl.nearest_neighbours):
        assert icl.errors_by_k(other, xs, ys)[0][dim:].min().item() > 0.2

    # ridge tends to least squares (exact here) as alpha -> 0, and a large alpha shrinks too far
    def ridge_error(alpha):
        return icl.errors_by_k(lambda a, b: icl.ridge(a, b, alpha=alpha), xs, ys)[0][dim + 1 :]

    assert ridge_error(1e-5).max().item() < 1e-3
    assert ridge_error(10.0).min().item() > 0.05


def test_nearest_neighbours_and_averaging_on_a_worked_example():
    xs = torch.tensor([[[0.0], [1.0], [2.0], [10.0]]])
    ys = torch.tensor([[0.0, 10.0, 20.0, 100.0]])
    # at the last point: previous x's 0, 1, 2; the nearest to 10 is 2
    assert icl.nearest_neighbours(xs, ys, n=1)[0].tolist() == [0.0, 0.0, 10.0, 20.0]
    assert icl.nearest_neighbours(xs, ys, n=3)[0, 3].item() == pytest.approx(10.0)
    # w_hat = mean(y x) over 0*0, 1*10, 2*20 = 50 / 3, times x = 10
    assert icl.averaging(xs, ys)[0, 3].item() == pytest.approx(500 / 3)


def test_train_icl_is_reproducible_and_leaves_the_global_generator_alone():
    cfg = icl.ICLConfig(dim=2, k=2, width=8, layers=1, heads=2, steps=3, batch=4)
    state = torch.random.get_rng_state()
    model, history = icl.train_icl(cfg, seed=3, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert len(history.loss) == 3 and not model.training
    assert icl.train_icl(cfg, seed=3, progress=False)[1].loss == history.loss


def test_bad_input_raises_clear_errors():
    g = _gen()
    with pytest.raises(ValueError, match="torch.Generator"):
        icl.sample_tasks(2, 3, 2, 0)
    with pytest.raises(ValueError, match="dim >= 1"):
        icl.sample_tasks(2, 3, 0, g)
    with pytest.raises(ValueError, match="x_scale > 0"):
        icl.sample_tasks(2, 3, 2, g, x_scale=0.0)
    with pytest.raises(ValueError, match="noise >= 0"):
        icl.sample_tasks(2, 3, 2, g, noise=-1.0)
    xs, ys = icl.sample_tasks(2, 3, 2, g)
    with pytest.raises(ValueError, match="expected xs"):
        icl.build_prompt(xs, ys[:, :-1])
    with pytest.raises(ValueError, match="expected xs"):
        icl.least_squares(xs[0], ys)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        icl.ridge(xs, ys, alpha=0.0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        icl.nearest_neighbours(xs, ys, n=0)
    with pytest.raises(ValueError, match="multiple of heads"):
        icl.ICLConfig(width=30, heads=4)
    with pytest.raises(ValueError, match="sizes must be"):
        icl.ICLConfig(steps=0)
    with pytest.raises(ValueError, match="predict_fn returned"):
        icl.errors_by_k(lambda a, b: b[:, 0], xs, ys)
    with pytest.raises(ValueError, match="at least 2 prompts"):
        icl.errors_by_k(icl.least_squares, xs[:1], ys[:1])
    model = _tiny_model(dim=2, k=2)
    good = icl.build_prompt(xs, ys)  # (2, 7, 4)
    with pytest.raises(ValueError, match=r"expected tokens \(batch, 2n - 1, 4\)"):
        model(good[..., :3])  # width dim + 1, not dim + 2
    with pytest.raises(ValueError, match="build_prompt"):
        model(good[:, :6])  # an even number of tokens
    with pytest.raises(ValueError, match=r"expected tokens \(batch, 2n - 1, 4\)"):
        model(good[0])  # no batch dimension
    with pytest.raises(ValueError, match=r"expected tokens \(batch, 2n - 1, 4\)"):
        model(torch.zeros(1, 0, 4))  # no token at all
    with pytest.raises(ValueError, match="at least 1 point"):
        icl.prompt_mask(0)
