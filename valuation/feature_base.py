"""The feature-map interface and the input checks every map shares (docs/cgm.md §4).

:mod:`valuation.features` (identity, PCA, the dispatch) and
:mod:`valuation.autoencoder` both build on this module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

#: Floor of the per-feature standard deviation used for z-scoring (docs/cgm.md §4).
STD_FLOOR = 1e-8


def check_samples(x: NDArray, name: str = "x") -> NDArray:
    """Samples (n, ...) with n >= 1, all finite, as an array.

    Raises:
        ValueError: on a bad shape, no rows, or NaN/inf.
    """
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(
            f"Argument `{name}` must be (n, ...) with n >= 1 samples, got shape "
            f"{x.shape}"
        )
    if not np.isfinite(x).all():
        raise ValueError(f"Argument `{name}` contains NaN or inf")
    return x


class FeatureMap(ABC):
    """A fitted map from samples (n, ...) to feature vectors (n, d) float32."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def feature_dim(self) -> int:
        """Dimension d of the feature vectors."""

    @abstractmethod
    def transform(self, x: NDArray) -> NDArray[np.float32]:
        """Map samples (n, ...) of the fitted shape to features (n, d) float32."""
