import dataclasses
import tomllib

import pytest

from pipeline import config as config_mod
from pipeline.cli import DEFAULT_CONFIG
from pipeline.config import ConfigError, RunConfig, load_config, parse_set


def test_default_toml_equals_dataclass_defaults():
    with DEFAULT_CONFIG.open("rb") as f:
        raw = tomllib.load(f)
    assert load_config(DEFAULT_CONFIG) == RunConfig()
    # every field of every table is written out in the file
    for field in dataclasses.fields(RunConfig):
        if field.name in ("seed", "threads"):  # the top-level keys
            assert field.name in raw
            continue
        table = getattr(RunConfig(), field.name)
        assert set(raw[field.name]) == {f.name for f in dataclasses.fields(table)}


def test_threads_auto_is_half_the_cpus_and_recorded_resolved(monkeypatch):
    monkeypatch.setattr(config_mod.os, "sched_getaffinity", lambda pid: set(range(6)))
    assert config_mod.resolve_threads("auto") == 3
    monkeypatch.setattr(config_mod.os, "sched_getaffinity", lambda pid: {0})
    assert config_mod.resolve_threads("auto") == 1  # never 0
    monkeypatch.setattr(config_mod.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert config_mod.resolve_threads("auto") == config_mod.MAX_AUTO_THREADS
    assert RunConfig(threads=5).tables("sample")["threads"] == 5


def test_threads_refuses_zero():
    with pytest.raises(ConfigError, match="threads"):
        load_config(None, ["threads=0"])


def _write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "overrides", "match"),
    [
        (
            "[data]\nsourse = 'gmm'\n",
            [],
            r"\[data\] sourse: unknown key \(did you mean 'source'",
        ),
        ("[dta]\n", [], r"\[dta\]: unknown table"),
        (
            "[data]\nn_parties = 'five'\n",
            [],
            r"\[data\] n_parties: expected an integer",
        ),
        ("[data]\nn_parties = true\n", [], r"\[data\] n_parties"),
        ("[gan]\nquality = 1\n", [], r"\[gan\] quality"),
        (
            "[data]\nn_parties = 1\n",
            [],
            r"\[data\] n_parties: expected an integer >= 2",
        ),
        ("[value]\nlengthscale = -1\n", [], r"\[value\] lengthscale"),
        ("[value]\nlengthscale = 0\n", [], r"\[value\] lengthscale"),
        ("[reward]\nrho = 1.5\n", [], r"\[reward\] rho"),
        ("[sample]\ninv_temp = -1\n", [], r"\[sample\] inv_temp"),
        ("[fl]\ngamma = 0\n", [], r"\[fl\] gamma"),
        ("[fl]\nbeta = [1.0, 0.0]\n", [], r"\[fl\] beta"),
        ("[data]\nsource = 'files'\n", [], r"\[data\] party_files"),
        ("[gan]\nsource = 'oracle'\n", [], r"\[gan\] source"),
        ("", ["data.split=halves"], r"\[data\] split: expected one of"),
        ("", ["nonsense"], r"--set 'nonsense'"),
        ("", ["value.lengthscale=abc"], r"\[value\] lengthscale"),
        ("[data]\nn_parties = 3\nn_parties = 4\n", [], "invalid TOML"),
        ("[data]\n[data]\n", [], "invalid TOML"),
        ("[data]\nsource = 'gmm'\nn_parties = 17\n", [], r"\[value\] shapley"),
        ("[fl]\nbaselines = ['cffl']\n", [], r"\[fl\] baselines: expected a list"),
        ("[fl]\nn_parties = 1\n", [], r"\[fl\] n_parties: expected 0 \(inherit\)"),
        ("[fl]\nbeta = []\n", [], r"\[fl\] beta: .* got \[\]"),
        ("[nash]\nseeds = [1, 1]\n", [], r"\[nash\] seeds: .*without repeats"),
        ("[evaluate]\ninv_temps = [1.0, nan]\n", [], r"\[evaluate\] inv_temps"),
        ("[contract]\ncosts = [0.1, 0.2]\nprobs = [0.5, 0.5]\n", [], "decreasing"),
        ("seed = -1\n", [], r"\[root\] seed: expected an integer >= 0"),
        ("[evaluate]\nsvc = true\n", [], r"\[evaluate\] svc: unknown key"),
        ("[contract]\nsolver = 'trust-constr'\n", [], r"\[contract\] solver"),
    ],
)
def test_bad_config(tmp_path, text, overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_write(tmp_path, text), overrides)


def test_set_and_seed_override(tmp_path):
    cfg = load_config(
        _write(tmp_path, "seed = 3\n"),
        [
            "data.source=gmm",
            "value.lengthscale=1.5",
            "sample.inv_temp=inf",
            "evaluate.inv_temps=[1, 2]",
        ],
        seed=9,
    )
    assert cfg.data.source == "gmm"
    assert cfg.value.lengthscale == 1.5
    assert cfg.sample.inv_temp == float("inf")
    assert cfg.evaluate.inv_temps == (1.0, 2.0)
    assert cfg.seed == 9


def test_parse_set_bare_word_is_string():
    assert parse_set("gan.source=file") == (["gan", "source"], "file")
    assert parse_set("fl.beta=[0.5, 1]") == (["fl", "beta"], [0.5, 1])


def test_int_accepted_for_float(tmp_path):
    cfg = load_config(_write(tmp_path, "[sample]\ninv_temp = 2\n"))
    assert cfg.sample.inv_temp == 2.0
    assert isinstance(cfg.sample.inv_temp, float)


@pytest.mark.parametrize(
    "path", sorted(DEFAULT_CONFIG.parent.glob("*.toml")), ids=lambda p: p.name
)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    with path.open("rb") as f:
        raw = tomllib.load(f)
    for table, keys in raw.items():
        if isinstance(keys, dict):
            for key, value in keys.items():
                got = getattr(getattr(cfg, table), key)
                assert got == (tuple(value) if isinstance(value, list) else value)


def test_bounds_are_declared_beside_the_fields():
    """Every numeric field's range sits in its annotation, checked by the loader."""
    import typing

    from pipeline.config_loader import Bounds

    # Prepare
    hints = typing.get_type_hints(RunConfig, include_extras=True)
    tables = [t for n, t in hints.items() if n not in ("seed", "threads")]
    # Execute
    bounded = {
        (t.__name__, name)
        for t in tables
        for name, hint in typing.get_type_hints(t, include_extras=True).items()
        if any(isinstance(m, Bounds) for m in getattr(hint, "__metadata__", ()))
    }
    # Assert: a sample of fields from every table
    for key in [
        ("DataConfig", "n_parties"),
        ("GanConfig", "n_candidates"),
        ("ValueConfig", "lengthscale"),
        ("RewardConfig", "rho"),
        ("SampleConfig", "inv_temp"),
        ("EvaluateConfig", "inv_temps"),
        ("FlConfig", "beta"),
        ("ContractConfig", "gtol"),
        ("NashConfig", "seeds"),
    ]:
        assert key in bounded, key
