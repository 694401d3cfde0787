"""A conditional tabular GAN, the CTGAN design (Xu et al. 2019): docs/cgm.md §3.5.

Written here, not imported. The data side (mode-specific normalisation, the
conditional vector, training-by-sampling) is in ``gan/ctgan_data.py``; this module
holds the networks and :class:`CTGANModule`, the LightningModule that
``gan/train.py`` fits:

- G: [z (128) ; cond] → two residual blocks (Linear 256 → BatchNorm → ReLU, output
  concatenated with the input) → Linear(model width); α spans through tanh, mode and
  categorical spans through Gumbel-softmax (τ = 0.2).
- D (packed, ``pac`` rows per decision): [pac × (row ; cond)] → Linear 256 →
  LeakyReLU(0.2) → Dropout(0.5) → Linear 256 → LeakyReLU(0.2) → Dropout(0.5) →
  Linear 1.
- WGAN-GP losses (λ = 10, the penalty on packed gradients), and the generator's
  conditional cross-entropy on the span the conditional vector picked.
- Adam lr 2e-4, betas (0.5, 0.9), weight decay 1e-6.

Sampling conditions on the class label (the label is the last discrete column), so
``gan.sampling.generate(module, labels, seed=...)`` works unchanged: the latent holds
z and the Gumbel noise of every softmax span, so one seeded normal draw fixes a sample.
Output is in the encoded table space (z-scored continuous + one-hot). No code here
reads the global RNG (dropout, Gumbel noise and the penalty's interpolation use the
module's own generator).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from data.checks import check_int, check_positive
from gan.ctgan_data import discrete_spans, from_model_space, model_spans
from gan.module import derive_seed

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 128
"""Size of z (CTGAN: 128)."""
HIDDEN = (256, 256)
"""Widths of G's residual blocks and of D's layers (CTGAN: (256, 256))."""
PAC = 10
"""Rows per packed discriminator decision (CTGAN: 10); lowered to divide the batch."""
TAU = 0.2
"""Gumbel-softmax temperature (CTGAN: 0.2)."""
GP_LAMBDA = 10.0
"""Weight of the gradient penalty (CTGAN: 10)."""
DROPOUT = 0.5
CTGAN_EPOCHS = 150
"""``gan.epochs = "auto"`` for ctgan (tuned on the CPU, docs/cgm.md §3.5)."""
CTGAN_BATCH = 500
"""Largest ``gan.batch_size = "auto"`` for ctgan (CTGAN's 500)."""
CTGAN_MIN_STEPS_PER_EPOCH = 25
"""``"auto"`` shrinks the batch of a small table to give this many steps an epoch."""


def ctgan_auto_batch(n_rows: int) -> int:
    """``gan.batch_size = "auto"`` for ctgan: 500 rows, fewer for a small table.

    CTGAN's 500 leaves a table of 2,645 rows (the Adult paper split) 5 steps an
    epoch, too few for WGAN-GP to converge in a CPU budget; the batch is cut to
    ⌊n / 25⌋ rounded down to a multiple of :data:`PAC` (at least one pack, at most
    the table), which measured median KS 0.085 against 0.21–0.34 at 500 on Adult
    (docs/cgm.md §3.7).

    Args:
        n_rows: pooled training rows.

    Returns:
        The batch size.

    Example:
        >>> ctgan_auto_batch(32_561), ctgan_auto_batch(2_645), ctgan_auto_batch(40)
        (500, 100, 10)
    """
    per_epoch = n_rows // CTGAN_MIN_STEPS_PER_EPOCH // PAC * PAC
    return max(1, min(CTGAN_BATCH, max(PAC, per_epoch), n_rows))


_INIT_KEY, _TRAIN_KEY = 0, 1


def pac_for(batch_size: int, pac: int = PAC) -> int:
    """The largest pack size ≤ ``pac`` that divides ``batch_size`` (docs/cgm.md §3.5).

    Example:
        >>> pac_for(500), pac_for(64), pac_for(7)
        (10, 8, 7)
    """
    return max(p for p in range(1, pac + 1) if batch_size % p == 0)


class Residual(nn.Module):
    """CTGAN's residual block: cat([ReLU(BN(Linear(x))), x])."""

    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc = nn.Linear(i, o)
        self.bn = nn.BatchNorm1d(o)

    def forward(self, x: Tensor) -> Tensor:
        """(N, i) → (N, o + i)."""
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class TableGenerator(nn.Module):
    """G(z ; cond) → pre-activation model-space rows (CTGAN §4.4)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        blocks, d = [], in_dim
        for h in hidden:
            blocks.append(Residual(d, h))
            d += h
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Linear(d, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_dim) → (N, out_dim) logits / pre-tanh values."""
        return self.out(self.blocks(x))


class PackedDiscriminator(nn.Module):
    """D on packs of ``pac`` rows (PacGAN; CTGAN §4.4), dropout from a generator."""

    def __init__(self, in_dim: int, hidden: Sequence[int], pac: int) -> None:
        super().__init__()
        self.pac = pac
        dims = [in_dim * pac, *hidden]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in itertools.pairwise(dims)
        )
        self.out = nn.Linear(dims[-1], 1)

    def forward(self, x: Tensor, gen: torch.Generator | None = None) -> Tensor:
        """(N, in_dim) with N divisible by pac → (N / pac,) critic scores.

        ``gen`` draws the dropout masks (training); ``None`` disables dropout.
        """
        h = x.reshape(-1, x.shape[1] * self.pac)
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            if gen is not None:
                keep = torch.rand(h.shape, generator=gen, device=h.device) >= DROPOUT
                h = h * keep / (1.0 - DROPOUT)
        return self.out(h).squeeze(1)


def _init_linear(net: nn.Module, gen: torch.Generator) -> nn.Module:
    """PyTorch's default Linear / BatchNorm initialisation, drawn from ``gen`` only."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
                bound = 1.0 / math.sqrt(m.in_features)
                nn.init.uniform_(m.bias, -bound, bound, generator=gen)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
    return net


def gumbel_softmax(logits: Tensor, uniform: Tensor, tau: float = TAU) -> Tensor:
    """softmax((logits + g)/τ) with g = −log(−log U) from the given uniforms.

    Example:
        >>> u = torch.full((1, 3), 0.5)
        >>> round(float(gumbel_softmax(torch.zeros(1, 3), u).sum()), 6)
        1.0
    """
    u = uniform.clamp(1e-10, 1.0 - 1e-7)
    return torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=1)


class CTGANModule(pl.LightningModule):
    """CTGAN as a LightningModule with manual optimisation (docs/cgm.md §3.5).

    Per batch (real rows, their cond c₂, the fake cond c₁, its column mask m₁):
    D step L_D = mean D(G(z, c₁), c₁) − mean D(real, c₂) + λ·GP; G step
    L_G = −mean D(G(z, c₁), c₁) + CE(the picked discrete span of G's logits, c₁)·m₁.

    Args:
        transformer: the :func:`gan.ctgan_data.fit_transformer` dict.
        class_frequencies: the pooled class frequencies π_c.
        pac: rows per packed discriminator decision (must divide the batch size).
        embedding_dim: size of z.
        hidden: widths of G's residual blocks and D's hidden layers.
        lr: Adam learning rate of both optimisers.
        seed: root of the initial-weight and training-noise generators.

    Raises:
        ValueError: on a bad value.
    """

    def __init__(
        self,
        transformer: dict[str, Any],
        class_frequencies: Sequence[float],
        pac: int = PAC,
        embedding_dim: int = EMBEDDING_DIM,
        hidden: Sequence[int] = HIDDEN,
        lr: float = 2e-4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_int("pac", pac, 1)
        check_int("embedding_dim", embedding_dim, 1)
        check_positive("lr", lr)
        seed = check_int("seed", seed, 0)
        spans = model_spans(transformer)
        self.save_hyperparameters(
            {
                "transformer": transformer,
                "class_frequencies": [float(f) for f in class_frequencies],
                "pac": int(pac),
                "embedding_dim": int(embedding_dim),
                "hidden": [int(h) for h in hidden],
                "lr": float(lr),
                "seed": seed,
            }
        )
        self.automatic_optimization = False
        self._spans = spans
        self._discrete = discrete_spans(transformer)
        self.model_width = spans[-1][1] + spans[-1][2]
        self.cond_dim = sum(s for _, _, s in self._discrete)
        self.n_noise = sum(s for act, _, s in spans if act == "softmax")
        gen = torch.Generator().manual_seed(derive_seed(seed, _INIT_KEY))
        with torch.device("meta"):
            g = TableGenerator(embedding_dim + self.cond_dim, self.model_width, hidden)
            d = PackedDiscriminator(self.model_width + self.cond_dim, hidden, pac)
        self.generator = _init_linear(g.to_empty(device="cpu"), gen)
        self.discriminator = _init_linear(d.to_empty(device="cpu"), gen)
        self._train_gen: torch.Generator | None = None
        self.n_batches_seen = 0

    # ------------------------------------------------------------ properties
    @property
    def n_classes(self) -> int:
        """C, the number of classes."""
        return int(self.hparams["transformer"]["n_classes"])

    @property
    def latent_dim(self) -> int:
        """Size of the latent: z, one Gumbel normal per softmax output, two more."""
        return int(self.hparams["embedding_dim"]) + self.n_noise + 2

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(width,) of the encoded table."""
        return (int(self.hparams["transformer"]["width"]),)

    # ------------------------------------------------------------- generator
    def label_cond(self, y: Tensor, u: Tensor | None = None) -> Tensor:
        """The sampling-time conditional vector of label y (docs/cgm.md §3.5).

        The label span is one-hot(y); with ``u`` (N, 2) uniforms, a discrete feature
        column j = ⌊u₀·J⌋ and its category k ~ P(k | y) of the pooled rows (by
        inverse CDF on u₁) are set too, as in training (CTGAN samples this part of
        the conditional vector from the data's own frequencies).
        """
        cond = torch.zeros(y.shape[0], self.cond_dim, device=y.device)
        _, start, size = self._discrete[-1]
        cond[:, start : start + size] = F.one_hot(y.long(), size).float()
        columns = self.hparams["transformer"]["columns"]
        cats = [c for c in columns if "label_counts" in c]
        if u is None or not cats:
            return cond
        j = (u[:, 0] * len(cats)).long().clamp(max=len(cats) - 1)
        for jj, (col, (_, c0, k)) in enumerate(zip(cats, self._discrete, strict=False)):
            rows = j == jj
            counts = torch.tensor(col["label_counts"], dtype=torch.float64)
            counts = counts.to(y.device)[y[rows].long()] + 1e-12  # absent label: even
            cdf = torch.cumsum(counts / counts.sum(dim=1, keepdim=True), dim=1)
            pick = (cdf < u[rows, 1:2].double()).sum(dim=1).clamp(max=k - 1)
            cond[rows.nonzero().squeeze(1), c0 + pick] = 1.0
        return cond

    def activate(self, logits: Tensor, uniform: Tensor) -> Tensor:
        """Apply tanh to α spans, Gumbel-softmax (noise ``uniform``) to the others."""
        out, at = [], 0
        for act, s, k in self._spans:
            if act == "tanh":
                out.append(torch.tanh(logits[:, s : s + k]))
            else:
                noise = uniform[:, at : at + k]
                out.append(gumbel_softmax(logits[:, s : s + k], noise))
                at += k
        return torch.cat(out, dim=1)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """Samples of class y in the encoded table space (docs/cgm.md §3.5).

        Args:
            z: (N, latent_dim) standard normals: the first ``embedding_dim`` are z,
                the rest become uniforms through the normal CDF: the Gumbel noise,
                then the two draws of the conditional vector's feature part.
            y: (N,) int64 labels.

        Returns:
            (N, width) encoded rows (z-scored continuous, one-hot categorical).
        """
        e = int(self.hparams["embedding_dim"])
        uniform = 0.5 * (1.0 + torch.erf(z[:, e:] / math.sqrt(2.0)))
        cond = self.label_cond(y, uniform[:, -2:]).to(z.dtype)
        logits = self.generator(torch.cat([z[:, :e], cond], dim=1))
        activated = self.activate(logits, uniform[:, :-2])
        return from_model_space(self.hparams["transformer"], activated)

    # -------------------------------------------------------------- training
    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        """Two Adam optimisers, G first: lr 2e-4, betas (0.5, 0.9), decay 1e-6."""
        kw = {"lr": self.hparams["lr"], "betas": (0.5, 0.9), "weight_decay": 1e-6}
        return (
            torch.optim.Adam(self.generator.parameters(), **kw),
            torch.optim.Adam(self.discriminator.parameters(), **kw),
        )

    def on_fit_start(self) -> None:
        """Create the training-noise generator on the module's device, per rank."""
        seed = derive_seed(self.hparams["seed"], _TRAIN_KEY, self.global_rank)
        self._train_gen = torch.Generator(device=self.device).manual_seed(seed)

    def _fake(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        gen = self._train_gen
        n = cond.shape[0]
        e = self.hparams["embedding_dim"]
        z = torch.randn(n, e, generator=gen, device=self.device)
        logits = self.generator(torch.cat([z, cond], dim=1))
        u = torch.rand(n, self.n_noise, generator=gen, device=self.device)
        return logits, self.activate(logits, u)

    def _penalty(self, real: Tensor, fake: Tensor) -> Tensor:
        pac = self.hparams["pac"]
        n = real.shape[0] // pac
        t = torch.rand(n, 1, 1, generator=self._train_gen, device=self.device)
        t = t.expand(n, pac, real.shape[1]).reshape(real.shape)
        mix = (t * real + (1 - t) * fake).requires_grad_(True)
        score = self.discriminator(mix, self._train_gen)
        (grad,) = torch.autograd.grad(score.sum(), mix, create_graph=True)
        norm = grad.reshape(-1, pac * real.shape[1]).norm(2, dim=1)
        return GP_LAMBDA * ((norm - 1.0) ** 2).mean()

    def cond_loss(self, logits: Tensor, cond: Tensor, mask: Tensor) -> Tensor:
        """CTGAN's conditional cross-entropy: Σ_j m_j·CE(span_j, c_j) / N."""
        losses = [
            F.cross_entropy(
                logits[:, s : s + k], cond[:, c : c + k].argmax(dim=1), reduction="none"
            )
            for s, c, k in self._discrete
        ]
        return (torch.stack(losses, dim=1) * mask).sum() / logits.shape[0]

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """One critic step with gradient penalty, then one generator step.

        Raises:
            RuntimeError: if called outside ``Trainer.fit``.
        """
        if self._train_gen is None:
            raise RuntimeError("CTGANModule.training_step called before on_fit_start")
        opt_g, opt_d = self.optimizers()
        real, c_real, c_fake, mask = batch
        gen = self._train_gen

        self.toggle_optimizer(opt_d)
        _, fake = self._fake(c_fake)
        fake_in = torch.cat([fake, c_fake], dim=1).detach()
        real_in = torch.cat([real, c_real], dim=1)
        d_loss = (
            self.discriminator(fake_in, gen).mean()
            - self.discriminator(real_in, gen).mean()
        )
        d_total = d_loss + self._penalty(real_in, fake_in)
        opt_d.zero_grad()
        self.manual_backward(d_total)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        logits, fake = self._fake(c_fake)
        g_adv = -self.discriminator(torch.cat([fake, c_fake], dim=1), gen).mean()
        g_loss = g_adv + self.cond_loss(logits, c_fake, mask)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.n_batches_seen += 1
        self.log_dict(
            {"d_loss": d_total.detach(), "g_loss": g_loss.detach()},
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=real.shape[0],
        )
