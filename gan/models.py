"""Conditional GAN networks (docs/cgm.md §3.1; Tay et al. 2022; Radford et al. 2016).

Two families, both plain ``nn.Module`` and both conditioned on the class label:

- images (N, ch, H, W) with H, W divisible by 4: a conditional DCGAN
  (:class:`ImageGenerator`, :class:`ImageDiscriminator`);
- vectors (N, D): a conditional MLP GAN (:class:`VectorGenerator`,
  :class:`VectorDiscriminator`).

Generators work in the *model space* (images in [−1, 1] through ``tanh``, vectors
standardised); the scaling to and from the data space lives in ``gan/module.py``.
Weights are initialised by :func:`init_weights` from an explicit ``torch.Generator``,
so no network here reads the global RNG.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from data.checks import check_positive_int, is_int

logger = logging.getLogger(__name__)

IMAGE_LATENT_DIM = 100
"""Latent size of the conditional DCGAN (docs/cgm.md §3.1: z ~ N(0, I_100))."""
VECTOR_LATENT_DIM = 16
"""Latent size of the conditional MLP GAN (docs/cgm.md §3.1: z ~ N(0, I_16))."""
VECTOR_HIDDEN = 128
"""Hidden width of both MLPs of the vector GAN (docs/cgm.md §3.1)."""
LEAKY_SLOPE = 0.2
"""Negative slope of every LeakyReLU (docs/cgm.md §3.1)."""


def _check_image_shape(sample_shape: tuple[int, ...]) -> tuple[int, int, int]:
    shape = tuple(sample_shape)
    if len(shape) != 3 or any(not is_int(s) or s < 1 for s in shape):
        raise ValueError(
            f"Argument `sample_shape` must be (channels, H, W) of positive ints, "
            f"got {sample_shape!r}"
        )
    _, h, w = shape
    if h % 4 or w % 4:
        raise ValueError(
            f"Argument `sample_shape` must have H and W divisible by 4, "
            f"got {sample_shape!r}"
        )
    return shape  # type: ignore[return-value]


def _onehot(y: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    return F.one_hot(y.long(), n_classes).to(dtype)


class ImageGenerator(nn.Module):
    """Conditional DCGAN generator G(z, y) → (N, ch, H, W), [−1, 1] (docs/cgm.md §3.1).

    [z ; onehot(y)] → Linear(latent+C → 2w·(H/4)·(W/4)) → BatchNorm1d → ReLU
    → reshape (2w, H/4, W/4) → ConvTranspose2d(2w→w, k4, s2, p1) → BatchNorm2d → ReLU
    → ConvTranspose2d(w→ch, k4, s2, p1) → tanh.

    Args:
        sample_shape: (ch, H, W) of one image, H and W divisible by 4.
        n_classes: C, the number of classes.
        latent_dim: size of z (100 in the spec).
        width: w (``gan.width``, default 64).

    Raises:
        ValueError: if a size is < 1 or H, W are not divisible by 4.
    """

    def __init__(
        self,
        sample_shape: tuple[int, int, int],
        n_classes: int,
        latent_dim: int = IMAGE_LATENT_DIM,
        width: int = 64,
    ) -> None:
        super().__init__()
        ch, h, w = _check_image_shape(sample_shape)
        self.n_classes = check_positive_int("n_classes", n_classes)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        width = check_positive_int("width", width)
        self._base = (2 * width, h // 4, w // 4)
        self.fc = nn.Linear(latent_dim + n_classes, 2 * width * (h // 4) * (w // 4))
        self.bn_fc = nn.BatchNorm1d(self.fc.out_features)
        self.deconv1 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.deconv2 = nn.ConvTranspose2d(width, ch, 4, 2, 1)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """Generate images in the model space.

        Args:
            z: (N, latent_dim) float latent codes.
            y: (N,) int64 labels in [0, C).

        Returns:
            (N, ch, H, W) tensor in [−1, 1].
        """
        h = torch.cat([z, _onehot(y, self.n_classes, z.dtype)], dim=1)
        h = F.relu(self.bn_fc(self.fc(h)))
        h = h.view(-1, *self._base)
        h = F.relu(self.bn1(self.deconv1(h)))
        return torch.tanh(self.deconv2(h))


class ImageDiscriminator(nn.Module):
    """Conditional DCGAN discriminator D(x, y) → logit (docs/cgm.md §3.1).

    [x ; C constant label planes] → Conv2d(ch+C→w, k4, s2, p1) → LeakyReLU(0.2)
    → Conv2d(w→2w, k4, s2, p1) → BatchNorm2d → LeakyReLU(0.2) → flatten → Linear(→1).

    Args:
        sample_shape: (ch, H, W) of one image, H and W divisible by 4.
        n_classes: C.
        width: w.

    Raises:
        ValueError: if a size is < 1 or H, W are not divisible by 4.
    """

    def __init__(
        self, sample_shape: tuple[int, int, int], n_classes: int, width: int = 64
    ) -> None:
        super().__init__()
        ch, h, w = _check_image_shape(sample_shape)
        self.n_classes = check_positive_int("n_classes", n_classes)
        width = check_positive_int("width", width)
        self.conv1 = nn.Conv2d(ch + n_classes, width, 4, 2, 1)
        self.conv2 = nn.Conv2d(width, 2 * width, 4, 2, 1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width * (h // 4) * (w // 4), 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Score images.

        Args:
            x: (N, ch, H, W) images in the model space ([−1, 1]).
            y: (N,) int64 labels.

        Returns:
            (N,) logits (real vs fake).
        """
        planes = _onehot(y, self.n_classes, x.dtype)[:, :, None, None]
        planes = planes.expand(-1, -1, x.shape[2], x.shape[3])
        h = torch.cat([x, planes], dim=1)
        h = F.leaky_relu(self.conv1(h), LEAKY_SLOPE)
        h = F.leaky_relu(self.bn2(self.conv2(h)), LEAKY_SLOPE)
        return self.fc(h.flatten(1)).squeeze(1)


class VectorGenerator(nn.Module):
    """Conditional MLP generator G(z, y) → (N, D), standardised (docs/cgm.md §3.1).

    [z ; onehot(y)] → Linear 128 → LeakyReLU(0.2) → Linear 128 → LeakyReLU(0.2)
    → Linear D.

    Args:
        n_features: D.
        n_classes: C.
        latent_dim: size of z (16 in the spec).
        hidden: hidden width (128 in the spec).

    Raises:
        ValueError: if a size is < 1.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        latent_dim: int = VECTOR_LATENT_DIM,
        hidden: int = VECTOR_HIDDEN,
    ) -> None:
        super().__init__()
        n_features = check_positive_int("n_features", n_features)
        self.n_classes = check_positive_int("n_classes", n_classes)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        hidden = check_positive_int("hidden", hidden)
        self.fc1 = nn.Linear(latent_dim + n_classes, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, n_features)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """Generate standardised vectors.

        Args:
            z: (N, latent_dim) float latent codes.
            y: (N,) int64 labels.

        Returns:
            (N, D) tensor.
        """
        h = torch.cat([z, _onehot(y, self.n_classes, z.dtype)], dim=1)
        h = F.leaky_relu(self.fc1(h), LEAKY_SLOPE)
        h = F.leaky_relu(self.fc2(h), LEAKY_SLOPE)
        return self.fc3(h)


class VectorDiscriminator(nn.Module):
    """Conditional MLP discriminator D(x, y) → logit (docs/cgm.md §3.1).

    [x ; onehot(y)] → Linear 128 → LeakyReLU(0.2) → Linear 128 → LeakyReLU(0.2)
    → Linear 1.

    Args:
        n_features: D.
        n_classes: C.
        hidden: hidden width (128 in the spec).

    Raises:
        ValueError: if a size is < 1.
    """

    def __init__(
        self, n_features: int, n_classes: int, hidden: int = VECTOR_HIDDEN
    ) -> None:
        super().__init__()
        n_features = check_positive_int("n_features", n_features)
        self.n_classes = check_positive_int("n_classes", n_classes)
        hidden = check_positive_int("hidden", hidden)
        self.fc1 = nn.Linear(n_features + n_classes, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Score standardised vectors.

        Args:
            x: (N, D) standardised vectors.
            y: (N,) int64 labels.

        Returns:
            (N,) logits.
        """
        h = torch.cat([x, _onehot(y, self.n_classes, x.dtype)], dim=1)
        h = F.leaky_relu(self.fc1(h), LEAKY_SLOPE)
        h = F.leaky_relu(self.fc2(h), LEAKY_SLOPE)
        return self.fc3(h).squeeze(1)


_WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def init_weights(net: nn.Module, generator: torch.Generator) -> nn.Module:
    """DCGAN initialisation (docs/cgm.md §3.1), drawn from ``generator`` only.

    Conv/linear weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), all biases 0,
    BatchNorm running statistics reset. Modules are visited in registration order, so
    the result depends only on the generator's seed.

    Args:
        net: the network, modified in place.
        generator: a CPU ``torch.Generator``; the parameters must be on the CPU.

    Returns:
        ``net`` itself.

    Example:
        >>> lin = init_weights(nn.Linear(2, 1), torch.Generator().manual_seed(0))
        >>> lin.bias.tolist()
        [0.0]
    """
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _WEIGHTED):
                nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, _NORMS):
                nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
    return net


def build_networks(
    kind: str,
    sample_shape: tuple[int, ...],
    n_classes: int,
    latent_dim: int,
    width: int,
    generator: torch.Generator,
) -> tuple[nn.Module, nn.Module]:
    """Build and initialise (G, D) of docs/cgm.md §3.1 without touching the global RNG.

    The networks are created on the ``meta`` device (no default initialisation, hence
    no global-RNG draw), materialised on the CPU and initialised by
    :func:`init_weights` from ``generator``, G first.

    Args:
        kind: ``"image"`` (conditional DCGAN) or ``"vector"`` (conditional MLP GAN).
        sample_shape: (ch, H, W) for images, (D,) for vectors.
        n_classes: C.
        latent_dim: size of z.
        width: w of the DCGAN (ignored for vectors, whose hidden width is 128).
        generator: CPU ``torch.Generator`` for the initial weights.

    Returns:
        (generator network, discriminator network) on the CPU.

    Raises:
        ValueError: on an unknown ``kind`` or bad sizes.
    """
    shape = tuple(sample_shape)
    with torch.device("meta"):
        if kind == "image":
            g_net: nn.Module = ImageGenerator(shape, n_classes, latent_dim, width)  # type: ignore[arg-type]
            d_net: nn.Module = ImageDiscriminator(shape, n_classes, width)  # type: ignore[arg-type]
        elif kind == "vector":
            if len(shape) != 1:
                raise ValueError(
                    f"Argument `sample_shape` must be (D,) for vectors, "
                    f"got {sample_shape!r}"
                )
            g_net = VectorGenerator(shape[0], n_classes, latent_dim)
            d_net = VectorDiscriminator(shape[0], n_classes)
        else:
            raise ValueError(
                f"Argument `kind` must be 'image' or 'vector', got {kind!r}"
            )
    g_net = init_weights(g_net.to_empty(device="cpu"), generator)
    d_net = init_weights(d_net.to_empty(device="cpu"), generator)
    return g_net, d_net
