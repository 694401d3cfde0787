"""PartyValues: the content of ``values.json`` (docs/interface.md §6, docs/cgm.md §5.5).

Parties are indexed 0 … N−1; a coalition key is the sorted member ids joined by
commas, written and read only by :func:`valuation.coalition.coalition_key` and
:func:`valuation.coalition.parse_coalition_key`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from typing import Any, Literal, Self

from valuation.coalition import parse_coalition_key

logger = logging.getLogger(__name__)

ShapleyMethod = Literal["exact", "permutation"]


@dataclass(frozen=True, kw_only=True)
class PartyValues:
    """Everything ``values.json`` holds (docs/interface.md §6; docs/cgm.md §5.5 extras).

    Attributes:
        lengthscale: ℓ of the SE kernel.
        n_parties: N.
        coalition_values: {coalition key: v(C)}; all 2^N − 1 non-empty coalitions
            (exact) or the singletons, the grand coalition and every C_i
            (permutation).
        shapley: (N,) Shapley values φ.
        alpha: (N,) normalised Shapley values φ / max φ (not the CGSV decay);
            negative for φ_i < 0, and 0 for every party when max φ ≤ 0
            (docs/cgm.md §6.4).
        v_single: (N,) v({i}).
        v_grand: v of all parties' data (real data only).
        v_stable_lower: (N,) v(C_i), C_i = {j : φ_j ≤ φ_i + 1e-12·max|φ|}.
        v_max: (N,) v(D_i ⊎ G), party data plus the whole candidate pool.
        v_reference: K̄_TT = v(T).
        lengthscale_bracket: final bisection bracket (lo, hi) for ``"auto"``;
            None (JSON null) for a fixed ℓ.
        shapley_method: ``"exact"`` or ``"permutation"``.
        party_sizes: (N,) n_i.
        n_candidates: n_G.
        features: the feature map used (``identity``, ``pca``, ``autoencoder``).
        feature_dim: dimension d of the vectors the kernel saw.
        shapley_stderr: (N,) standard errors of φ (permutation only, else None
            and left out of the JSON).
    """

    lengthscale: float
    n_parties: int
    coalition_values: dict[str, float]
    shapley: tuple[float, ...]
    alpha: tuple[float, ...]
    v_single: tuple[float, ...]
    v_grand: float
    v_stable_lower: tuple[float, ...]
    v_max: tuple[float, ...]
    v_reference: float
    lengthscale_bracket: tuple[float, float] | None
    shapley_method: ShapleyMethod
    party_sizes: tuple[int, ...]
    n_candidates: int
    features: str
    feature_dim: int
    shapley_stderr: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        """Normalise sequences to tuples and check lengths, finiteness and keys."""
        n = self.n_parties
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"Field `n_parties` must be an int >= 1, got {n!r}")
        for name in ("shapley", "alpha", "v_single", "v_stable_lower", "v_max"):
            object.__setattr__(self, name, _float_tuple(name, getattr(self, name), n))
        sizes = tuple(int(s) for s in self.party_sizes)
        if len(sizes) != n or min(sizes) < 1:
            raise ValueError(
                f"Field `party_sizes` must be {n} ints >= 1, got {self.party_sizes!r}"
            )
        object.__setattr__(self, "party_sizes", sizes)
        if self.shapley_stderr is not None:
            object.__setattr__(
                self,
                "shapley_stderr",
                _float_tuple("shapley_stderr", self.shapley_stderr, n),
            )
        if self.lengthscale_bracket is not None:
            object.__setattr__(
                self,
                "lengthscale_bracket",
                _float_tuple("lengthscale_bracket", self.lengthscale_bracket, 2),
            )
        for name in ("lengthscale", "v_grand", "v_reference"):
            object.__setattr__(self, name, _finite(name, getattr(self, name)))
        for name, least in (("n_candidates", 1), ("feature_dim", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(
                    f"Field `{name}` must be an int >= {least}, got {value!r}"
                )
        if self.shapley_method not in ("exact", "permutation"):
            raise ValueError(
                "Field `shapley_method` must be 'exact' or 'permutation', got "
                f"{self.shapley_method!r}"
            )
        values = {}
        for key, v in dict(self.coalition_values).items():
            members = parse_coalition_key(key)
            if not members or max(members) >= n:
                raise ValueError(
                    f"Field `coalition_values` has key {key!r} outside parties "
                    f"0..{n - 1}"
                )
            values[key] = _finite(f"coalition_values[{key!r}]", v)
        object.__setattr__(self, "coalition_values", values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: lists for tuples; ``shapley_stderr`` only when set.

        Returns:
            The content of ``values.json`` (docs/interface.md key order first).
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "shapley_stderr" and value is None:
                continue
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from :meth:`to_dict` output (e.g. a parsed ``values.json``).

        Args:
            data: the dict.

        Returns:
            The PartyValues.

        Raises:
            ValueError: on a missing or unknown key, or a bad value.
        """
        names = {f.name for f in fields(cls)}
        optional = {"shapley_stderr"}
        unknown = sorted(set(data) - names)
        missing = sorted(names - optional - set(data))
        if unknown or missing:
            raise ValueError(
                f"values.json: unknown keys {unknown!r}, missing keys {missing!r}"
            )
        return cls(**data)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"Field `{name}` must be a number, got {value!r}")
    if not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Field `{name}` must be a number, got {value!r}") from e
    if not math.isfinite(value):
        raise ValueError(f"Field `{name}` must be finite, got {value!r}")
    return float(value)


def _float_tuple(name: str, values: Any, length: int) -> tuple[float, ...]:
    out = tuple(_finite(name, v) for v in values)
    if len(out) != length:
        raise ValueError(f"Field `{name}` must have {length} entries, got {len(out)}")
    return out
