"""Small buffer-free classifiers of docs/cgsv.md §4, used by `fl`, `evaluate` and `gan`.

- ``cnn``: the MNIST net of the CGSV reference code (Xu et al., NeurIPS 2021) on 1×32×32
  inputs (28×28 images zero-padded by 2); 104,242 parameters at C = 10.
- ``mlp``: Linear(d, 64), ReLU, Linear(64, 64), ReLU, Linear(64, C); 65C + 64d + 4224
  parameters.

Neither has buffers (no BatchNorm), so a model is exactly its flat parameter vector,
as the gradient rewards of docs/cgsv.md §2 need. `Preprocessor` holds the input
standardisation of docs/cgsv.md §4 (the padding included), fitted on training arrays.
`train_classifier` (Adam, docs/cgm.md §8.2; `fit_classifier` does preprocessing,
building and training in one call), `predict`, `accuracy` and `penultimate_features`
(the activation before the last Linear, the feature map of the GAN quality check) take
*preprocessed* inputs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn
from tqdm.auto import tqdm

from data.checks import check_int, check_positive, check_positive_int
from data.devices import resolve_device

logger = logging.getLogger(__name__)

ClassifierKind = Literal["cnn", "mlp"]
_STD_FLOOR = 1e-8  # docs/cgsv.md §4: a constant feature must not divide by zero
_CNN_IMAGE = 28
_CNN_PAD = 2


class Classifier(nn.Module):
    """A classifier split into a feature trunk and a final Linear head.

    ``forward(x) = head(features(x))``; ``features(x)`` is the penultimate activation.
    Parameters appear in ``named_parameters()`` order ``features.*`` then ``head.*``.

    Args:
        kind: ``"cnn"`` or ``"mlp"``.
        features: the layers up to and including the last non-linearity.
        head: the final Linear layer producing the C logits.
    """

    def __init__(self, kind: ClassifierKind, features: nn.Sequential, head: nn.Linear):
        super().__init__()
        self.kind = kind
        self.features = features
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        """Logits of a batch.

        Args:
            x: (n, 1, 32, 32) for ``cnn``, (n, d) or (n, ...) for ``mlp``; float32.

        Returns:
            (n, C) logits.
        """
        return self.head(self.features(x))


def check_no_buffers(model: nn.Module) -> None:
    """Refuse a model with buffers (docs/cgsv.md §2: "Models must have no buffers").

    Args:
        model: any module.

    Raises:
        RuntimeError: if the model holds a buffer (e.g. BatchNorm running stats).
    """
    names = [name for name, _ in model.named_buffers()]
    if names:
        raise RuntimeError(
            f"Model must have no buffers (docs/cgsv.md §2), found {names}; "
            "a flat parameter vector would not describe it"
        )


def resolve_classifier_kind(
    kind: Literal["auto", "cnn", "mlp"], input_shape: tuple[int, ...]
) -> ClassifierKind:
    """Resolve ``"auto"``: ``cnn`` for 28×28 images, else ``mlp`` (docs/cgsv.md §4).

    Args:
        kind: ``"auto"``, ``"cnn"`` or ``"mlp"``.
        input_shape: the shape of one raw sample, e.g. (1, 28, 28) or (30,).

    Returns:
        ``"cnn"`` or ``"mlp"``.

    Raises:
        ValueError: if ``kind`` is unknown.

    Example:
        >>> resolve_classifier_kind("auto", (1, 28, 28))
        'cnn'
        >>> resolve_classifier_kind("auto", (64,))
        'mlp'
    """
    if kind == "auto":
        return "cnn" if _is_28x28(tuple(input_shape)) else "mlp"
    if kind in ("cnn", "mlp"):
        return kind
    raise ValueError(f"Argument `kind` must be 'auto', 'cnn' or 'mlp', got {kind!r}")


def _is_28x28(shape: tuple[int, ...]) -> bool:
    return shape in ((_CNN_IMAGE, _CNN_IMAGE), (1, _CNN_IMAGE, _CNN_IMAGE))


def build_classifier(
    kind: Literal["auto", "cnn", "mlp"],
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    seed: int | None = None,
) -> Classifier:
    """Build the ``cnn`` or ``mlp`` of docs/cgsv.md §4 with PyTorch's default init.

    Args:
        kind: ``"cnn"``, ``"mlp"`` or ``"auto"`` (see `resolve_classifier_kind`).
        input_shape: shape of one *raw* sample: (28, 28) or (1, 28, 28) for ``cnn``
            (the `Preprocessor` pads it to 1×32×32); anything for ``mlp`` (flattened).
        n_classes: C ≥ 2.
        seed: when given, the initialisation runs under ``torch.manual_seed(seed)``
            inside ``torch.random.fork_rng``, so the global RNG is left untouched;
            ``None`` draws from the global torch RNG.

    Returns:
        The model (float32, on CPU, training mode).

    Raises:
        TypeError: if C is not an integer.
        ValueError: on an unknown kind, ``cnn`` on non-28×28 input, or C < 2.
        RuntimeError: if the model has buffers.

    Example:
        >>> m = build_classifier("mlp", (64,), 10, seed=0)
        >>> sum(p.numel() for p in m.parameters())  # 65·10 + 64·64 + 4224
        8970
    """
    shape = tuple(int(s) for s in input_shape)
    resolved = resolve_classifier_kind(kind, shape)
    n_classes = check_int("n_classes", n_classes, 2)
    if resolved == "cnn" and not _is_28x28(shape):
        raise ValueError(
            "Argument `input_shape` must be (28, 28) or (1, 28, 28) for the cnn, "
            f"got {shape}"
        )
    if any(s < 1 for s in shape) or not shape:
        raise ValueError(f"Argument `input_shape` must be positive sizes, got {shape}")
    if seed is None:
        model = _build(resolved, shape, int(n_classes))
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _build(resolved, shape, int(n_classes))
    check_no_buffers(model)
    return model


def _build(kind: ClassifierKind, shape: tuple[int, ...], n_classes: int) -> Classifier:
    if kind == "cnn":
        features = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=3, stride=1),  # 32 → 30
            nn.Tanh(),
            nn.MaxPool2d(2),  # 30 → 15
            nn.Conv2d(64, 16, kernel_size=7),  # 15 → 9
            nn.Tanh(),
            nn.MaxPool2d(2),  # 9 → 4
            nn.Flatten(),  # 16·4·4 = 256
            nn.Linear(256, 200),
            nn.Tanh(),
        )
        return Classifier("cnn", features, nn.Linear(200, n_classes))
    d = math.prod(shape)
    features = nn.Sequential(
        nn.Flatten(),
        nn.Linear(d, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
    )
    return Classifier("mlp", features, nn.Linear(64, n_classes))


@dataclass(frozen=True, eq=False)
class Preprocessor:
    """Input standardisation of docs/cgsv.md §4, fitted on a training array.

    - ``cnn``: zero-pad 28×28 images by 2 pixels to 1×32×32, then subtract the scalar
      mean and divide by the scalar std of the padded training images.
    - ``mlp``: flatten, then standardise each feature with the training mean and std
      (std floored at 1e-8). A feature that is constant in the training data (std
      below the floor) gets scale 1 instead, as in scikit-learn's StandardScaler: on
      the training data this is the same (the centred column is 0 either way), but
      data from elsewhere (synthetic candidates with a little ink in an always-blank
      pixel of `digits`) is no longer multiplied by 1e8. Deviation from docs/cgsv.md §4.

    Attributes:
        kind: ``"cnn"`` or ``"mlp"``.
        mean: () float64 for cnn, (d,) float64 for mlp.
        std: same shape as ``mean``, ≥ 1e-8.
    """

    kind: ClassifierKind
    mean: NDArray[np.float64]
    std: NDArray[np.float64]

    @classmethod
    def fit(cls, kind: Literal["auto", "cnn", "mlp"], x: ArrayLike) -> Preprocessor:
        """Fit the standardisation on training inputs.

        Args:
            kind: ``"cnn"``, ``"mlp"`` or ``"auto"`` (resolved from ``x.shape[1:]``).
            x: (n, ...) raw training inputs, n ≥ 1; for cnn (n, 28, 28) or
                (n, 1, 28, 28).

        Returns:
            The fitted preprocessor.

        Raises:
            ValueError: on an empty or non-finite ``x`` or a shape the kind refuses.

        Example:
            >>> p = Preprocessor.fit("mlp", np.array([[0.0, 1.0], [2.0, 1.0]]))
            >>> p.mean.tolist(), p.std.tolist()  # a constant feature keeps scale 1
            ([1.0, 1.0], [1.0, 1.0])
        """
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim < 2 or arr.shape[0] < 1:
            raise ValueError(
                f"Argument `x` must be (n, ...) with n >= 1, got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError("Argument `x` must be finite")
        resolved = resolve_classifier_kind(kind, arr.shape[1:])
        if resolved == "cnn":
            padded = _pad(arr)
            mean = np.asarray(padded.mean(), dtype=np.float64)
            std = np.asarray(max(float(padded.std()), _STD_FLOOR), dtype=np.float64)
        else:
            flat = arr.reshape(arr.shape[0], -1)
            mean = flat.mean(0)
            std = flat.std(0)
            std = np.where(std < _STD_FLOOR, 1.0, std)
        return cls(kind=resolved, mean=mean, std=std)

    def transform(self, x: ArrayLike) -> NDArray[np.float32]:
        """Apply the fitted standardisation.

        Args:
            x: (n, ...) raw inputs of the training inputs' sample shape.

        Returns:
            float32 (n, 1, 32, 32) for cnn, (n, d) for mlp.

        Raises:
            ValueError: if the sample shape does not match the fitted one.
        """
        arr = np.asarray(x, dtype=np.float64)
        if self.kind == "cnn":
            if arr.ndim < 2 or not _is_28x28(arr.shape[1:]):
                raise ValueError(
                    "Argument `x` must be (n, 28, 28) or (n, 1, 28, 28), "
                    f"got {arr.shape}"
                )
            out = (_pad(arr) - self.mean) / self.std
        else:
            flat = arr.reshape(arr.shape[0], -1) if arr.ndim >= 1 else arr
            if flat.ndim != 2 or flat.shape[1] != self.mean.shape[0]:
                raise ValueError(
                    f"Argument `x` must have {self.mean.shape[0]} features per sample, "
                    f"got shape {arr.shape}"
                )
            out = (flat - self.mean) / self.std
        return out.astype(np.float32)


def _pad(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Zero-pad (n, 28, 28) or (n, 1, 28, 28) images by 2 to (n, 1, 32, 32)."""
    imgs = x.reshape(x.shape[0], 1, _CNN_IMAGE, _CNN_IMAGE)
    p = _CNN_PAD
    return np.pad(imgs, ((0, 0), (0, 0), (p, p), (p, p)))


def _torch_seed(seed: int | np.random.Generator | np.random.SeedSequence | None) -> int:
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed
    return int(np.random.default_rng(seed).integers(0, 2**63 - 1))


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _as_inputs(x: ArrayLike | Tensor, device: torch.device) -> Tensor:
    t = torch.as_tensor(x)
    if t.dtype != torch.float32:
        t = t.to(torch.float32)
    return t.to(device)


def _check_xy(x: ArrayLike | Tensor, y: ArrayLike | Tensor) -> tuple[int, Tensor]:
    yt = torch.as_tensor(y)
    n = len(x)  # type: ignore[arg-type]
    if yt.ndim != 1 or yt.shape[0] != n:
        raise ValueError(
            f"Arguments `x` and `y` must have the same number of rows with 1-D `y`, "
            f"got {n} rows and y of shape {tuple(yt.shape)}"
        )
    if n < 1:
        raise ValueError("Arguments `x` and `y` must not be empty")
    return n, yt.to(torch.long)


def train_classifier(
    model: nn.Module,
    x: ArrayLike | Tensor,
    y: ArrayLike | Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int | np.random.Generator | np.random.SeedSequence | None,
    device: str = "cpu",
    progress: bool = False,
    sample_weight: ArrayLike | None = None,
) -> nn.Module:
    """Train with Adam on the mean cross-entropy, reshuffled epochs (docs/cgm.md §8.2).

    Each epoch draws a permutation from one seeded ``torch.Generator`` and takes one
    Adam step per mini-batch of ``batch_size`` (the last one may be short). With
    ``sample_weight`` the batch loss is the weighted mean Σ w_j·CE_j / Σ w_j
    (docs/cgm.md §8.2: reward rows down-weighted); the batches are the same.

    Args:
        model: the classifier; trained in place and moved to ``device``.
        x: (n, ...) float32 *preprocessed* inputs.
        y: (n,) integer labels in 0..C−1.
        epochs: ≥ 1.
        batch_size: ≥ 1.
        lr: Adam learning rate > 0.
        seed: seeds the shuffling generator.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        progress: show a tqdm bar over epochs.
        sample_weight: (n,) finite weights ≥ 0 with a positive sum, or None
            (every row weight 1: the plain mean).

    Returns:
        The same model, trained, on ``device``.

    Raises:
        TypeError: if ``epochs``, ``batch_size`` or ``lr`` has the wrong type.
        ValueError: on bad ``epochs``, ``batch_size``, ``lr``, mismatched ``x``/``y``
            or bad ``sample_weight``.
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    n, yt = _check_xy(x, y)
    dev = resolve_device(device)
    model.to(dev)
    xt = _as_inputs(x, dev)
    yt = yt.to(dev)
    wt = None if sample_weight is None else _check_weights(sample_weight, n).to(dev)
    gen = torch.Generator().manual_seed(_torch_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    per_row = nn.CrossEntropyLoss(reduction="none")
    model.train()
    for _ in tqdm(range(int(epochs)), disable=not progress, desc="train classifier"):
        order = torch.randperm(n, generator=gen).to(dev)
        for start in range(0, n, int(batch_size)):
            idx = order[start : start + int(batch_size)]
            opt.zero_grad(set_to_none=True)
            if wt is None:
                loss = loss_fn(model(xt[idx]), yt[idx])
            else:
                w = wt[idx]
                if float(w.sum()) == 0.0:  # a batch of weight-0 rows: no step
                    continue
                ce = per_row(model(xt[idx]), yt[idx])
                loss = (w * ce).sum() / w.sum()
            loss.backward()
            opt.step()
    model.eval()
    return model


def _check_weights(sample_weight: ArrayLike, n: int) -> Tensor:
    """(n,) float32 weights ≥ 0, finite, with a positive sum."""
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(
            f"Argument `sample_weight` must have shape ({n},), got {w.shape}"
        )
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            "Argument `sample_weight` must be finite, >= 0 and have a positive sum"
        )
    return torch.from_numpy(w.astype(np.float32))


def fit_classifier(
    x: ArrayLike,
    y: ArrayLike,
    n_classes: int,
    *,
    kind: Literal["auto", "cnn", "mlp"] = "auto",
    epochs: int,
    seed: int,
    device: str = "cpu",
    sample_weight: ArrayLike | None = None,
) -> tuple[Classifier, Preprocessor]:
    """Fit a `Preprocessor` on ``x``, build and train a classifier (docs/cgm.md §8.2).

    The classifier of the GAN quality check (docs/cgm.md §3.4) and of the downstream
    accuracy (§8.2): ``cnn`` for 28×28 images, ``mlp`` otherwise when ``kind`` is
    ``"auto"``; initialisation and shuffling both seeded with ``seed``; Adam 1e-3,
    batch 64.

    Args:
        x: (n, ...) raw training inputs.
        y: (n,) integer labels in 0..C−1.
        n_classes: C.
        kind: ``"auto"``, ``"cnn"`` or ``"mlp"``.
        epochs: training epochs ≥ 1.
        seed: seeds the initialisation and the shuffling.
        device: torch device of the training.
        sample_weight: per-row loss weights (see `train_classifier`), or None.

    Returns:
        The trained classifier and the preprocessor its inputs need.

    Raises:
        ValueError: on bad inputs (see `Preprocessor.fit` and `train_classifier`).
    """
    pre = Preprocessor.fit(kind, x)
    model = build_classifier(pre.kind, np.shape(x)[1:], n_classes, seed=seed)
    train_classifier(
        model,
        pre.transform(x),
        y,
        epochs=epochs,
        seed=seed,
        device=device,
        sample_weight=sample_weight,
    )
    return model, pre


@torch.inference_mode()
def _batched(
    fn: nn.Module, model: nn.Module, x: ArrayLike | Tensor, batch_size: int
) -> Tensor:
    check_positive_int("batch_size", batch_size)
    dev = _model_device(model)
    xt = _as_inputs(x, dev)
    if xt.shape[0] == 0:
        raise ValueError("Argument `x` must not be empty")
    was_training = model.training
    model.eval()
    out = torch.cat(
        [fn(xt[i : i + batch_size]) for i in range(0, xt.shape[0], batch_size)]
    )
    model.train(was_training)
    return out


def predict(
    model: nn.Module, x: ArrayLike | Tensor, *, batch_size: int = 1024
) -> NDArray[np.int64]:
    """Predicted labels argmax_c logits.

    Args:
        model: a classifier (evaluated on the device of its parameters).
        x: (n, ...) float32 preprocessed inputs.
        batch_size: rows per forward pass.

    Returns:
        (n,) int64 labels.

    Raises:
        TypeError: if ``batch_size`` is not an integer.
        ValueError: on an empty ``x`` or a bad ``batch_size``.
    """
    logits = _batched(model, model, x, batch_size)
    return logits.argmax(1).cpu().numpy().astype(np.int64)


def accuracy(
    model: nn.Module,
    x: ArrayLike | Tensor,
    y: ArrayLike | Tensor,
    *,
    batch_size: int = 1024,
) -> float:
    """Fraction of correctly classified rows.

    Args:
        model: a classifier.
        x: (n, ...) float32 preprocessed inputs.
        y: (n,) integer labels.
        batch_size: rows per forward pass.

    Returns:
        Accuracy in [0, 1].

    Raises:
        TypeError: if ``batch_size`` is not an integer.
        ValueError: on mismatched ``x``/``y`` or a bad ``batch_size``.
    """
    _, yt = _check_xy(x, y)
    pred = _batched(model, model, x, batch_size).argmax(1)
    return float((pred == yt.to(pred.device)).to(torch.float64).mean())


def penultimate_features(
    model: Classifier, x: ArrayLike | Tensor, *, batch_size: int = 1024
) -> NDArray[np.float32]:
    """The activation before the last Linear: 200-d for ``cnn``, 64-d for ``mlp``.

    Used as the feature map of the FID/KID quality check of the `gan` stage.

    Args:
        model: a `Classifier` from `build_classifier`.
        x: (n, ...) float32 preprocessed inputs.
        batch_size: rows per forward pass.

    Returns:
        (n, h) float32 features.

    Raises:
        TypeError: if ``model`` is not a `Classifier` or ``batch_size`` not an int.
        ValueError: on an empty ``x`` or a bad ``batch_size``.
    """
    if not isinstance(model, Classifier):
        raise TypeError(
            f"Argument `model` must be a Classifier from build_classifier, got "
            f"{type(model).__name__}"
        )
    return (
        _batched(model.features, model, x, batch_size).cpu().numpy().astype(np.float32)
    )
