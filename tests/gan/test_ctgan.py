"""CTGAN (docs/cgm.md §3.5): transformer, conditional sampler, networks, training."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from data.tables import Column, TableSchema
from gan.ctgan import CTGANModule, PackedDiscriminator, gumbel_softmax, pac_for
from gan.ctgan_data import (
    CondSampler,
    fit_transformer,
    from_model_space,
    model_spans,
    table_layout,
    to_model_space,
)
from gan.sampling import generate
from gan.train import resolve_model, train_ctgan


def _table(n: int = 400, seed: int = 0):
    """Two continuous columns (a bimodal one, an integer one), two categoricals."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.5, rng.normal(-2, 0.3, n), rng.normal(2, 0.5, n))
    b = np.round(rng.normal(40, 10, n) + 5 * y)
    c1 = (rng.random(n) < 0.2 + 0.6 * y).astype(int)
    c2 = rng.integers(0, 3, n)
    cols = (
        Column("a", "continuous", 0, 1, mean=float(a.mean()), std=float(a.std())),
        Column("b", "continuous", 1, 1, mean=float(b.mean()), std=float(b.std())),
        Column("c1", "categorical", 2, 2, categories=("u", "v")),
        Column("c2", "categorical", 4, 3, categories=("p", "q", "r")),
    )
    schema = TableSchema(cols, "y", ("no", "yes"))
    x = np.concatenate(
        [
            ((a - a.mean()) / a.std())[:, None],
            ((b - b.mean()) / b.std())[:, None],
            np.eye(2)[c1],
            np.eye(3)[c2],
        ],
        axis=1,
    ).astype(np.float32)
    return x, y.astype(np.int64), schema


@pytest.fixture(scope="module")
def table():
    return _table()


@pytest.fixture(scope="module")
def transformer(table):
    x, y, schema = table
    return fit_transformer(x, y, table_layout(schema), 2, seed=0)


def _train(table, seed=3, **kw):
    x, y, schema = table
    pl.seed_everything(seed, workers=True)
    kw = {"epochs": 2, "batch_size": 50, **kw}
    return train_ctgan(
        x,
        y,
        layout=table_layout(schema),
        n_classes=2,
        seed=seed,
        accelerator="cpu",
        **kw,
    )


@pytest.fixture(scope="module")
def trained(table):
    return _train(table)


# ----------------------------------------------------------------- transformer
def test_layout_follows_the_schema(table):
    _, _, schema = table
    lay = table_layout(schema)
    assert [(c["name"], c["kind"], c["start"], c["size"]) for c in lay] == [
        ("a", "continuous", 0, 1),
        ("b", "continuous", 1, 1),
        ("c1", "categorical", 2, 2),
        ("c2", "categorical", 4, 3),
    ]


def test_bimodal_column_gets_two_modes_near_the_truth(table, transformer):
    _x, _, schema = table
    a = transformer["columns"][0]
    col = schema.columns[0]
    # the modes in raw units: -2 and +2 (std 0.3, 0.5); the DP prior may keep extra
    # small modes, so check that the two heaviest-covered true modes are present
    raw = np.asarray(a["modes_mean"]) * col.std + col.mean
    assert np.min(np.abs(raw + 2)) < 0.2
    assert np.min(np.abs(raw - 2)) < 0.2
    assert transformer["columns"][1]["integral"] is True
    assert transformer["columns"][0]["integral"] is False


def test_mode_normalisation_is_invertible(table, transformer):
    # Prepare
    x, y, _ = table
    tf = {**transformer, "columns": [dict(c) for c in transformer["columns"]]}
    tf["columns"][1]["integral"] = False  # exact inverse: no rounding

    # Execute
    m = to_model_space(tf, x, y, seed=1)
    back = from_model_space(tf, torch.from_numpy(m).double()).numpy()

    # Assert: |alpha| < 0.99 rows come back exactly (float32 storage: 1e-5)
    spans = model_spans(tf)
    alphas = m[:, [s for act, s, _ in spans if act == "tanh"]]
    inside = np.all(np.abs(alphas) < 0.99, axis=1)
    assert inside.mean() > 0.95
    np.testing.assert_allclose(back[inside], x[inside], atol=1e-5)
    assert m.shape[1] == spans[-1][1] + spans[-1][2]
    np.testing.assert_array_equal(m[:, -2:], np.eye(2)[y])  # the label span


def test_integral_columns_are_rounded_in_raw_units(table, transformer):
    x, y, schema = table
    m = to_model_space(transformer, x, y, seed=1)
    m[:, 0] += 0.013  # nudge every alpha: outputs are off-grid before rounding
    back = from_model_space(transformer, torch.from_numpy(m)).numpy()
    col = schema.columns[1]
    raw = back[:, 1].astype(np.float64) * col.std + col.mean
    np.testing.assert_allclose(raw, np.round(raw), atol=1e-3)  # float32 storage
    # and bitwise the encoder's code of that integer: one atom per value, as in x
    code = ((np.round(raw) - col.mean) / col.std).astype(np.float32)
    np.testing.assert_array_equal(back[:, 1], code)
    assert np.isin(back[:, 1], x[:, 1]).mean() > 0.9  # the real rows' own codes


# ----------------------------------------------------------------- sampler
def test_cond_sampler_log_frequency_and_matching_rows(table, transformer):
    # Prepare
    x, y, _ = table
    sampler = CondSampler(transformer, x, y)
    rng = np.random.default_rng(0)

    # Execute
    cond, mask, j, k = sampler.sample_cond(20_000, rng)
    rows = sampler.sample_rows(j, k, rng)

    # Assert: one-hot cond and mask; columns uniform; categories ∝ log(1 + count)
    assert sampler.cond_dim == 2 + 3 + 2
    assert sampler.n_discrete == 3
    np.testing.assert_array_equal(cond.sum(axis=1), 1)
    np.testing.assert_array_equal(mask.sum(axis=1), 1)
    np.testing.assert_array_equal(mask.argmax(axis=1), j)
    counts = np.bincount(x[:, 2:4].argmax(axis=1), minlength=2)
    want = np.log1p(counts) / np.log1p(counts).sum()
    got = np.bincount(k[j == 0], minlength=2) / (j == 0).sum()
    np.testing.assert_allclose(got, want, atol=0.02)  # 6,700 draws: ~4 sd
    codes = [x[:, 2:4].argmax(1), x[:, 4:7].argmax(1), y]
    for jj in range(3):
        sel = j == jj
        np.testing.assert_array_equal(codes[jj][rows[sel]], k[sel])


# ----------------------------------------------------------------- networks
def test_gumbel_spans_sum_to_one_and_shapes(transformer):
    module = CTGANModule(transformer, [0.5, 0.5], pac=5)
    n = 10
    g = torch.Generator().manual_seed(0)
    logits = module.generator(torch.randn(n, 128 + module.cond_dim, generator=g))
    out = module.activate(logits, torch.rand(n, module.n_noise, generator=g))
    assert out.shape == (n, module.model_width)
    for act, s, k in model_spans(transformer):
        span = out[:, s : s + k]
        if act == "softmax":
            torch.testing.assert_close(span.sum(dim=1), torch.ones(n))
            assert bool((span >= 0).all())
        else:
            assert bool((span.abs() <= 1).all())


def test_gumbel_softmax_matches_the_formula():
    logits = torch.tensor([[0.0, 1.0, -1.0]])
    u = torch.tensor([[0.3, 0.6, 0.9]])
    g = -torch.log(-torch.log(u))
    want = torch.softmax((logits + g) / 0.2, dim=1)
    torch.testing.assert_close(gumbel_softmax(logits, u, 0.2), want)


def test_packed_discriminator_scores_packs():
    d = PackedDiscriminator(4, (8, 8), pac=5)
    x = torch.randn(20, 4)
    assert d(x).shape == (4,)
    # a pack's score only depends on its own rows
    y = x.clone()
    y[5:] += 1.0
    assert torch.equal(d(x)[0], d(y)[0])


def test_pac_for_divides_the_batch():
    for batch in (1, 7, 50, 64, 500, 501):
        p = pac_for(batch)
        assert batch % p == 0
        assert 1 <= p <= 10
        assert all(batch % q for q in range(p + 1, 11))


def test_cond_loss_is_cross_entropy_on_the_picked_span(transformer):
    module = CTGANModule(transformer, [0.5, 0.5], pac=1)
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, module.model_width, generator=g)
    cond = torch.zeros(3, module.cond_dim)
    mask = torch.zeros(3, 3)
    cond[0, 1], mask[0, 0] = 1, 1  # c1 = v
    cond[1, 4], mask[1, 1] = 1, 1  # c2 = r
    cond[2, 5], mask[2, 2] = 1, 1  # label 0
    starts = [s for s, _, _ in module._discrete]  # model-space starts of c1, c2, y
    want = (
        -torch.log_softmax(logits[0, starts[0] : starts[0] + 2], 0)[1]
        - torch.log_softmax(logits[1, starts[1] : starts[1] + 3], 0)[2]
        - torch.log_softmax(logits[2, starts[2] : starts[2] + 2], 0)[0]
    ) / 3
    torch.testing.assert_close(module.cond_loss(logits, cond, mask), want)


# ----------------------------------------------------------------- training
def test_samples_are_encoded_rows_with_the_requested_labels(trained, table):
    x, _, _ = table
    module = trained[0]
    labels = np.array([0, 1, 1, 0, 1] * 20)
    out = generate(module, labels, seed=4)
    assert out.shape == (100, x.shape[1])
    assert out.dtype == np.float32
    for s, k in ((2, 2), (4, 3)):  # hard one-hot categoricals
        np.testing.assert_array_equal(out[:, s : s + k].sum(axis=1), 1)
        assert set(np.unique(out[:, s : s + k])) <= {0.0, 1.0}
    for j in (0, 1):  # continuous values inside the observed range
        assert x[:, j].min() <= out[:, j].min()
        assert out[:, j].max() <= x[:, j].max()
    # the label is conditioned on, not generated: the generator's own label span
    # is what the cond vector asked for in a trained model; here we check the wiring
    cond = module.label_cond(torch.from_numpy(labels))
    np.testing.assert_array_equal(cond[:, -2:].argmax(1).numpy(), labels)


def test_same_seed_same_bytes_other_seed_differs(trained, table):
    labels = np.array([0, 1] * 25)
    again, _, _ = _train(table)
    other, _, _ = _train(table, seed=4)
    a = generate(trained[0], labels, seed=1)
    assert a.tobytes() == generate(again, labels, seed=1).tobytes()
    assert a.tobytes() != generate(other, labels, seed=1).tobytes()
    assert a.tobytes() != generate(trained[0], labels, seed=2).tobytes()


def test_checkpoint_round_trip(trained, tmp_path):
    module, trainer, stats = trained
    path = tmp_path / "g.ckpt"
    trainer.save_checkpoint(path)
    loaded = CTGANModule.load_from_checkpoint(path, map_location="cpu")
    labels = np.array([1, 0, 1])
    np.testing.assert_array_equal(
        generate(loaded, labels, seed=3), generate(module, labels, seed=3)
    )
    assert stats.n_batches == 2 * (400 // 50)


@pytest.mark.slow
def test_trained_ctgan_follows_the_label():
    # 60 epochs on 1,000 rows (~1 min): the conditional dependence of c1 on y is
    # learnt (real P(c1 = v | y) is 0.2 and 0.8)
    x, y, schema = _table(1000, seed=1)
    module, _, _ = _train((x, y, schema), epochs=60, batch_size=100)
    out0 = generate(module, np.zeros(2000, np.int64), seed=0)
    out1 = generate(module, np.ones(2000, np.int64), seed=0)
    assert out1[:, 3].mean() - out0[:, 3].mean() > 0.3


# ----------------------------------------------------------------- selection
@pytest.mark.parametrize(
    ("model", "ndim", "schema", "want"),
    [
        ("auto", 4, False, "dcgan"),
        ("auto", 2, True, "ctgan"),
        ("auto", 2, False, "mlp"),
        ("mlp", 2, True, "mlp"),
        ("ctgan", 2, True, "ctgan"),
        ("dcgan", 4, False, "dcgan"),
    ],
)
def test_resolve_model(model, ndim, schema, want):
    assert resolve_model(model, ndim, schema) == want


@pytest.mark.parametrize(
    ("model", "ndim", "schema", "match"),
    [
        ("ctgan", 2, False, "table"),
        ("ctgan", 4, False, "table"),
        ("dcgan", 2, True, "vectors"),
        ("mlp", 4, False, "images"),
        ("gan", 2, False, "one of"),
    ],
)
def test_resolve_model_refuses(model, ndim, schema, match):
    with pytest.raises(ValueError, match=match):
        resolve_model(model, ndim, schema)


def test_atoms_become_point_modes():
    # Prepare: 60 % exact zeros (like capital-gain) and a spread of other values
    rng = np.random.default_rng(2)
    v = np.concatenate([np.zeros(300), rng.normal(5.0, 1.0, 200)])
    y = rng.integers(0, 2, 500).astype(np.int64)
    x = ((v - v.mean()) / v.std()).astype(np.float32)[:, None]
    lay = [{"name": "g", "kind": "continuous", "start": 0, "size": 1}]
    lay[0] |= {"mean": float(v.mean()), "std": float(v.std())}

    # Execute
    tf = fit_transformer(x, y, lay, 2, seed=0)
    m = to_model_space(tf, x, y, seed=0)
    back = from_model_space(tf, torch.from_numpy(m)).numpy()

    # Assert: one sigma-0 mode at the zero's z-value with weight 0.6
    col = tf["columns"][0]
    atom = [i for i, s in enumerate(col["modes_std"]) if s == 0.0]
    assert len(atom) == 1
    assert col["modes_mean"][atom[0]] == pytest.approx(float(x[0, 0]))
    assert col["modes_weight"][atom[0]] == pytest.approx(0.6)
    zeros = v == 0
    k = m[:, 1 : 1 + len(col["modes_std"])].argmax(axis=1)
    np.testing.assert_array_equal(k[zeros], atom[0])
    np.testing.assert_array_equal(m[zeros, 0], 0.0)
    assert not np.any(k[~zeros] == atom[0])
    # the atom comes back as the exact stored value
    np.testing.assert_array_equal(back[zeros, 0], x[zeros, 0])
