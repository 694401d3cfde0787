from __future__ import annotations

import pytest
import torch
from torch import nn

from gan.models import (
    ImageDiscriminator,
    ImageGenerator,
    VectorDiscriminator,
    VectorGenerator,
    build_networks,
    init_weights,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------- known shapes
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 12, 16)])
def test_image_networks_shapes_follow_spec(shape):
    # Prepare
    ch, h, w = shape
    width, n_classes, n = 8, 10, 5
    g_net, d_net = build_networks("image", shape, n_classes, 100, width, _gen(0))
    z = torch.randn(n, 100, generator=_gen(1))
    y = torch.arange(n) % n_classes

    # Execute
    with torch.no_grad():
        fake = g_net(z, y)
        logits = d_net(fake, y)

    # Assert: the §3.1 layer sizes, tanh range and one logit per image
    assert g_net.fc.in_features == 100 + n_classes
    assert g_net.fc.out_features == 2 * width * (h // 4) * (w // 4)
    assert (g_net.deconv1.in_channels, g_net.deconv1.out_channels) == (2 * width, width)
    assert (g_net.deconv2.in_channels, g_net.deconv2.out_channels) == (width, ch)
    assert d_net.conv1.in_channels == ch + n_classes
    assert (d_net.conv2.in_channels, d_net.conv2.out_channels) == (width, 2 * width)
    assert d_net.fc.in_features == 2 * width * (h // 4) * (w // 4)
    assert fake.shape == (n, ch, h, w)
    assert float(fake.abs().max()) <= 1.0
    assert logits.shape == (n,)


def test_vector_networks_shapes_follow_spec():
    # Prepare
    n_features, n_classes, n = 2, 5, 7
    g_net, d_net = build_networks("vector", (n_features,), n_classes, 16, 64, _gen(0))
    z = torch.randn(n, 16, generator=_gen(1))
    y = torch.arange(n) % n_classes

    # Execute
    fake = g_net(z, y)
    logits = d_net(fake, y)

    # Assert
    assert [m.out_features for m in (g_net.fc1, g_net.fc2, g_net.fc3)] == [128, 128, 2]
    assert g_net.fc1.in_features == 16 + n_classes
    assert d_net.fc1.in_features == n_features + n_classes
    assert [m.out_features for m in (d_net.fc1, d_net.fc2, d_net.fc3)] == [128, 128, 1]
    assert fake.shape == (n, n_features)
    assert logits.shape == (n,)


def test_label_conditioning_changes_the_output():
    # Prepare
    g_net, _ = build_networks("image", (1, 8, 8), 3, 100, 8, _gen(0))
    g_net.eval()
    z = torch.randn(1, 100, generator=_gen(1)).repeat(3, 1)

    # Execute
    out = g_net(z, torch.arange(3))

    # Assert: same z, different labels, different images
    assert not torch.equal(out[0], out[1])
    assert not torch.equal(out[1], out[2])


# ----------------------------------------------------------------- initialisation
def test_init_weights_statistics():
    # Prepare
    net = nn.Sequential(nn.Linear(400, 500), nn.BatchNorm1d(2000), nn.Conv2d(8, 16, 4))

    # Execute
    init_weights(net, _gen(0))
    net.requires_grad_(False)

    # Assert: 2e5 draws give the std to ~0.2 % (3 s.e. ≈ 0.5 % of 0.02 → 1e-4)
    lin, bn, conv = net
    assert abs(float(lin.weight.std()) - 0.02) < 2e-4
    assert abs(float(lin.weight.mean())) < 2e-4
    assert abs(float(bn.weight.mean()) - 1.0) < 3e-3  # 2000 draws: s.e. 4.5e-4
    assert torch.count_nonzero(lin.bias) == 0
    assert torch.count_nonzero(bn.bias) == 0
    assert torch.count_nonzero(conv.bias) == 0
    assert torch.equal(bn.running_var, torch.ones(2000))


def test_build_networks_seed_pair_and_global_rng_untouched(seed, seed_alt):
    # Prepare
    state = torch.get_rng_state()

    # Execute
    g1, d1 = build_networks("image", (1, 8, 8), 3, 100, 8, _gen(seed))
    g2, d2 = build_networks("image", (1, 8, 8), 3, 100, 8, _gen(seed))
    g3, _ = build_networks("image", (1, 8, 8), 3, 100, 8, _gen(seed_alt))

    # Assert
    for a, b in zip(g1.state_dict().values(), g2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(d1.state_dict().values(), d2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(g1.fc.weight, g3.fc.weight)
    assert torch.equal(state, torch.get_rng_state())


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ImageGenerator((1, 10, 8), 3), "sample_shape"),
        (lambda: ImageDiscriminator((1, 8), 3), "sample_shape"),
        (lambda: ImageGenerator((1, 8, 8), 0), "n_classes"),
        (lambda: ImageGenerator((1, 8, 8), 3, width=0), "width"),
        (lambda: VectorGenerator(0, 3), "n_features"),
        (lambda: VectorDiscriminator(2, 3, hidden=-1), "hidden"),
        (lambda: build_networks("audio", (2,), 3, 16, 8, _gen(0)), "kind"),
        (lambda: build_networks("vector", (2, 2), 3, 16, 8, _gen(0)), "sample_shape"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
