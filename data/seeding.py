"""The one seed type every stochastic function of synthreward accepts.

A seed is an ``int``, a ``numpy.random.Generator``, a ``numpy.random.SeedSequence`` or
``None`` (fresh entropy): exactly what ``numpy.random.default_rng`` takes, so a
function owns its generator by calling ``default_rng(seed)`` once.
"""

from __future__ import annotations

import numpy as np

Seed = int | np.random.Generator | np.random.SeedSequence | None


def as_seed_sequence(seed: Seed) -> np.random.SeedSequence:
    """A `SeedSequence` for ``seed``, to ``spawn`` independent children from.

    A Generator contributes one draw (it is advanced); ``None`` takes fresh entropy.

    Example:
        >>> as_seed_sequence(7).spawn(2)[1].generate_state(1).dtype
        dtype('uint32')
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(2**63)))
    return np.random.SeedSequence(seed)
