"""A small patients table for the table-pool tests (docs/cgm.md §2.5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv


def write_patients_csv(
    path: Path, parties: tuple[str, ...], party_column: str, n: int, seed: int
) -> dict[str, list]:
    """Write the CSV and return its columns.

    Label ``outcome`` follows ``smoker`` (easy to learn); two continuous columns
    (``age``, ``bmi``), two categoricals (``region``, ``smoker``), and the party
    column assigning row i to ``parties[i % len(parties)]``.
    """
    rng = np.random.default_rng(seed)
    smoker = rng.choice(["yes", "no"], n)
    cols = {
        "age": rng.normal(50.0, 10.0, n).round(1).tolist(),
        "region": rng.choice(["north", "south", "east"], n).tolist(),
        "bmi": (rng.normal(25.0, 4.0, n) + 6 * (smoker == "yes")).round(2).tolist(),
        "smoker": smoker.tolist(),
        "outcome": np.where(smoker == "yes", "sick", "healthy").tolist(),
        party_column: [parties[i % len(parties)] for i in range(n)],
    }
    pacsv.write_csv(pa.table(cols), path)
    return cols
