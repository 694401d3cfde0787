"""The one seed type every stochastic function of synthreward accepts.

A seed is an ``int``, a ``numpy.random.Generator``, a ``numpy.random.SeedSequence`` or
``None`` (fresh entropy): exactly what ``numpy.random.default_rng`` takes, so a
function owns its generator by calling ``default_rng(seed)`` once.
"""

from __future__ import annotations

import numpy as np

Seed = int | np.random.Generator | np.random.SeedSequence | None
