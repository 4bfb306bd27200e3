"""tlcourse.ssl: InfoNCE against its cross-entropy form and its bound on mutual information,
NT-Xent's optimum and gradient, rotation labels, and what the augmentations keep and change."""

import math

import pytest
import torch
import torch.nn.functional as F

from tlcourse import ssl


def _reference_nt_xent(z1, z2, temperature):
    # SimCLR eq. 1 as a classification: row i of the (2n, 2n) similarity matrix, self masked out,
    # has its partner at column (i + n) mod 2n
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim - 1e9 * torch.eye(2 * n)
    return F.cross_entropy(sim, (torch.arange(2 * n) + n) % (2 * n))


def test_info_nce_is_cross_entropy_of_picking_the_diagonal():
    scores = torch.randn(7, 7, generator=torch.Generator().manual_seed(0))
    assert ssl.info_nce(scores).item() == pytest.approx(
        F.cross_entropy(scores, torch.arange(7)).item(), abs=1e-6
    )


def test_info_nce_of_uninformative_scores_is_log_k():
    # every candidate scored alike: the positive is one guess out of k, the bound certifies nothing
    assert ssl.info_nce(torch.zeros(16, 16)).item() == pytest.approx(math.log(16))
    assert ssl.mi_lower_bound(math.log(16), 16) == pytest.approx(0.0)


def test_info_nce_bounds_the_mutual_information_of_correlated_gaussians():
    # x, y standard normal with correlation rho per dimension: I(x; y) = -d/2 log(1 - rho^2). With
    # the optimal critic log p(y|x) - log p(y), E[log k - L] stays below I, can never pass log k,
    # and approaches I as k grows (van den Oord et al. 2018, section 2.3).
    rho, d = 0.95, 2
    mi = -d / 2 * math.log(1 - rho**2)  # 2.33 nats: more than log 4, less than log 64
    g = torch.Generator().manual_seed(0)
    means = {}
    for k, batches in ((4, 400), (64, 100), (1024, 10)):
        bounds = []
        for _ in range(batches):
            x = torch.randn(k, d, generator=g, dtype=torch.float64)
            y = rho * x + math.sqrt(1 - rho**2) * torch.randn(
                k, d, generator=g, dtype=torch.float64
            )
            diff = y[None, :, :] - rho * x[:, None, :]  # scores[i, j] = critic(x_i, y_j)
            scores = -(diff**2).sum(-1) / (2 * (1 - rho**2)) + (y**2).sum(-1)[None, :] / 2
            bounds.append(ssl.mi_lower_bound(ssl.info_nce(scores).item(), k))
        b = torch.tensor(bounds, dtype=torch.float64)
        means[k] = b.mean().item()
        assert means[k] - 2 * b.std().item() / len(b) ** 0.5 <= mi, k  # a lower bound, up to noise
        assert b.max().item() <= math.log(k) + 1e-9, k  # log k - L <= log k: L is never negative
    assert means[4] < means[64] < means[1024] and means[1024] > 0.9 * mi


def test_nt_xent_matches_the_cross_entropy_reference():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    for t in (0.1, 0.5, 2.0):
        assert ssl.nt_xent(z1, z2, t).item() == pytest.approx(
            _reference_nt_xent(z1, z2, t).item(), rel=1e-5
        )


def test_nt_xent_is_smallest_when_positives_align_and_negatives_are_orthogonal():
    aligned = torch.eye(4)  # view pairs identical, different images orthogonal
    g = torch.Generator().manual_seed(2)
    best = ssl.nt_xent(aligned, aligned, 0.5).item()
    for _ in range(20):
        z1, z2 = torch.randn(4, 4, generator=g), torch.randn(4, 4, generator=g)
        assert ssl.nt_xent(z1, z2, 0.5).item() > best
    # at this optimum each view scores 1/t with its partner and 0 with the 2n - 2 others
    t = 0.5
    assert best == pytest.approx(-1 / t + math.log(math.exp(1 / t) + 6))


def test_nt_xent_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ssl.nt_xent(a, b, 0.3), (z1, z2))


def test_bad_shapes_and_temperatures_are_clear_errors():
    with pytest.raises(ValueError, match="square"):
        ssl.info_nce(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="z1 and z2"):
        ssl.nt_xent(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        ssl.nt_xent(torch.zeros(3, 4), torch.zeros(3, 4), 0.0)
    with pytest.raises(ValueError, match="unknown"):
        ssl.augment(torch.zeros(2, 1, 8, 8), torch.Generator(), ("colour",))


def test_rotation_labels_on_an_asymmetric_image():
    image = torch.zeros(1, 1, 4, 4)
    image[0, 0, 0, 3] = 1.0  # one ink pixel in the top-right corner
    turned, labels = ssl.rotations(image)
    assert labels.tolist() == [0, 1, 2, 3]
    corner = [tuple((t[0] == 1).nonzero()[0].tolist()) for t in turned]
    # counter-clockwise: top-right -> top-left -> bottom-left -> bottom-right
    assert corner == [(0, 3), (0, 0), (3, 0), (3, 3)]


def test_augmentations_keep_shape_and_range_and_two_views_differ():
    g = torch.Generator().manual_seed(4)
    images = (torch.rand(6, 1, 28, 28, generator=g) > 0.8).float()
    for name in ssl.AUGMENTATIONS:
        out = ssl.augment(images, torch.Generator().manual_seed(5), (name,))
        assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1, name
        assert not torch.equal(out, images), name
    v1, v2 = ssl.two_views(images, torch.Generator().manual_seed(6))
    assert v1.shape == v2.shape == images.shape
    assert all(not torch.equal(a, b) for a, b in zip(v1, v2))  # every image's two views differ
    # the same generator state gives the same views: the draws are seeded, not global
    again = ssl.two_views(images, torch.Generator().manual_seed(6))
    assert torch.equal(again[0], v1) and torch.equal(again[1], v2)


def test_views_come_back_in_the_order_of_their_images():
    # the label of image i is the label of both its views: a blank image stays blank under every
    # augmentation, and an inked one keeps ink, so the order shows
    g = torch.Generator().manual_seed(7)
    images = (torch.rand(8, 1, 28, 28, generator=g) > 0.7).float()
    images[3] = 0.0
    for view in ssl.two_views(images, g):
        ink = view.flatten(1).sum(1)
        assert ink[3] == 0 and (ink[torch.arange(8) != 3] > 0).all()


def test_pretrain_lowers_the_simclr_loss_and_leaves_the_callers_random_state():
    from tlcourse.meta import conv4

    g = torch.Generator().manual_seed(8)
    images = (torch.rand(64, 1, 28, 28, generator=g) > 0.85).float()
    encoder, head = conv4(16), ssl.ProjectionHead(16, 32, 16)
    state = torch.random.get_rng_state()
    losses = ssl.pretrain(
        encoder, head, ssl.simclr_loss(0.5), images, steps=30, batch=16, lr=3e-3, progress=False
    )
    assert torch.equal(state, torch.random.get_rng_state())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    rot_head = torch.nn.Linear(16, 4)
    losses = ssl.pretrain(
        conv4(16), rot_head, ssl.rotation_loss, images, steps=30, batch=16, lr=3e-3, progress=False
    )
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_pretrain_with_labels_trains_the_supervised_baseline():
    from tlcourse.meta import conv4

    g = torch.Generator().manual_seed(9)
    labels = torch.arange(4).repeat(16)
    images = (torch.rand(4, 1, 28, 28, generator=g) > 0.8).float()[labels]  # 4 classes, 16 copies
    encoder, head = conv4(16), torch.nn.Linear(16, 4)
    losses = ssl.pretrain(encoder, head, ssl.supervised_loss, images, steps=20, batch=16, lr=3e-3,
                          progress=False, labels=labels)  # fmt: skip
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    with pytest.raises(ValueError, match="64 images but 3 labels"):
        ssl.pretrain(encoder, head, ssl.supervised_loss, images, steps=1, labels=labels[:3])
