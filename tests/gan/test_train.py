from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from gan.datamodule import PooledDataModule
from gan.module import GANModule
from gan.sampling import generate
from gan.train import resolve_trainer_settings, train_gan


def _tiny_images(seed: int, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 3, n).astype(np.int64)
    return x, y


def _train(x, y, seed, **kw):
    pl.seed_everything(seed, workers=True)
    kw = {"n_classes": 3, "epochs": 2, "batch_size": 16, "width": 8, **kw}
    return train_gan(x, y, seed=seed, accelerator="cpu", **kw)


@pytest.fixture(scope="module")
def trained():
    x, y = _tiny_images(0)
    return _train(x, y, 11)


# ----------------------------------------------------------------- scaling
def test_scaling_round_trip_images_and_vectors():
    # Prepare
    rng = np.random.default_rng(0)
    img = GANModule(
        kind="image",
        sample_shape=(1, 4, 4),
        n_classes=2,
        class_frequencies=[1, 1],
        width=4,
    )
    vec = GANModule(
        kind="vector",
        sample_shape=(3,),
        n_classes=2,
        class_frequencies=[1, 1],
        data_mean=[1.0, 2.0, 3.0],
        data_std=[2.0, 0.5, 0.0],
    )
    xi = torch.from_numpy(rng.random((5, 1, 4, 4), dtype=np.float32))
    xv = torch.from_numpy(rng.normal(size=(5, 3)).astype(np.float32))

    # Execute
    gi = img.from_data_space(xi)
    gv = vec.from_data_space(xv)

    # Assert: known maps 2x-1 and (x-mean)/std with the 1e-8 floor; float32 round trip
    torch.testing.assert_close(gi, 2 * xi - 1)
    torch.testing.assert_close(gv[:, 0], (xv[:, 0] - 1.0) / 2.0)
    torch.testing.assert_close(gv[:, 2], (xv[:, 2] - 3.0) / 1e-8)
    torch.testing.assert_close(img.to_data_space(gi), xi)
    torch.testing.assert_close(vec.to_data_space(gv)[:, :2], xv[:, :2])
    assert float(img.to_data_space(torch.tensor([-3.0, 3.0])).min()) == 0.0
    assert float(img.to_data_space(torch.tensor([-3.0, 3.0])).max()) == 1.0


# ----------------------------------------------------------------- datamodule
def test_datamodule_seeded_shuffle_and_drop_last(seed, seed_alt):
    # Prepare
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.zeros(10, dtype=np.int64)

    def order(s):
        dl = PooledDataModule(x, y, batch_size=3, seed=s).train_dataloader()
        return [b[0][:, 0].tolist() for b in dl]

    # Execute
    a, b, c = order(seed), order(seed), order(seed_alt)

    # Assert: 10 // 3 = 3 full batches, a permutation prefix
    assert len(a) == 3
    assert all(len(batch) == 3 for batch in a)
    assert len({v for batch in a for v in batch}) == 9
    assert a == b
    assert a != c


# ----------------------------------------------------------------- training
@pytest.mark.parametrize("kind", ["image", "vector"])
def test_fast_dev_run_smoke(kind):
    # Prepare
    rng = np.random.default_rng(0)
    if kind == "image":
        x, y = _tiny_images(1, n=20)
    else:
        x = rng.normal(size=(20, 2)).astype(np.float32)
        y = rng.integers(0, 3, 20).astype(np.int64)

    # Execute
    module, _, stats = _train(x, y, 3, fast_dev_run=True)

    # Assert
    assert stats.n_batches == 1
    assert np.isfinite(stats.d_loss)
    assert np.isfinite(stats.g_loss)
    assert module.hparams["kind"] == kind


def test_training_changes_weights_and_reports_stats(trained):
    # Prepare
    module, _, stats = trained
    fresh = GANModule(**module.hparams)

    # Assert: 64 rows // 16 = 4 batches per epoch, two epochs
    assert stats.epochs == 2
    assert stats.n_batches == 8
    assert stats.n_samples == 128
    assert stats.samples_per_s > 0
    assert not torch.equal(fresh.generator.fc.weight, module.generator.fc.weight)
    assert stats.to_dict()["precision"] == "32-true"


def test_training_seed_pair(trained, seed_alt):
    # Prepare
    x, y = _tiny_images(0)
    module_a = trained[0]

    # Execute
    module_b, _, _ = _train(x, y, 11)
    module_c, _, _ = _train(x, y, seed_alt)

    # Assert: identical weights and samples for the same seed, different otherwise
    for (name, a), b in zip(
        module_a.state_dict().items(), module_b.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    labels = np.array([0, 1, 2, 0])
    sa = generate(module_a, labels, seed=1)
    assert np.array_equal(sa, generate(module_b, labels, seed=1))
    assert not torch.equal(module_a.generator.fc.weight, module_c.generator.fc.weight)
    assert not np.array_equal(sa, generate(module_c, labels, seed=1))


def test_global_deterministic_flag_restored():
    x, y = _tiny_images(2)
    before = torch.are_deterministic_algorithms_enabled()
    _train(x, y, 1, fast_dev_run=True)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_max_steps_counts_batches():
    x, y = _tiny_images(2)
    _, _, stats = _train(x, y, 1, epochs=5, max_steps=3)
    assert stats.n_batches == 3


def test_checkpoint_round_trip(trained, tmp_path):
    # Prepare
    module, trainer, _ = trained
    path = tmp_path / "generator.ckpt"
    labels = np.array([2, 1, 0, 0, 1])

    # Execute
    trainer.save_checkpoint(path)
    loaded = GANModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)

    # Assert
    assert loaded.hparams == module.hparams
    np.testing.assert_array_equal(
        generate(loaded, labels, seed=4), generate(module, labels, seed=4)
    )


def test_vector_training_keeps_data_space():
    # Prepare: far-off mean and scale; samples must come back near the data
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(64, 2)) * [100.0, 0.01] + [1e3, -5.0]).astype(np.float32)
    y = rng.integers(0, 2, 64).astype(np.int64)

    # Execute
    module, _, _ = _train(x, y, 2, n_classes=2, epochs=1)
    out = generate(module, np.zeros(200, dtype=np.int64), seed=0)

    # Assert: an untrained-ish G still outputs O(1) in model space -> within ~10 std
    assert np.all(np.abs(out[:, 0] - 1e3) < 1e3)
    assert np.all(np.abs(out[:, 1] + 5.0) < 0.1)


# ----------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("args", "flags", "expected"),
    [
        (
            ("auto", "auto", "auto"),
            (False, 0, False),
            ("cpu", 1, "32-true", "auto", True),
        ),
        (
            ("auto", "auto", "auto"),
            (True, 1, True),
            ("gpu", 1, "bf16-mixed", "auto", "warn"),
        ),
        (
            ("auto", "auto", "auto"),
            (True, 1, False),
            ("gpu", 1, "32-true", "auto", "warn"),
        ),
        (
            ("gpu", "auto", "auto"),
            (True, 4, True),
            ("gpu", 4, "bf16-mixed", "ddp", "warn"),
        ),
        (("cpu", 2, "auto"), (True, 4, True), ("cpu", 2, "32-true", "ddp", True)),
        (
            ("cpu", 1, "bf16-mixed"),
            (False, 0, False),
            ("cpu", 1, "bf16-mixed", "auto", True),
        ),
    ],
)
def test_resolve_trainer_settings(args, flags, expected):
    s = resolve_trainer_settings(
        *args,
        cuda_available=flags[0],
        cuda_device_count=flags[1],
        bf16_supported=flags[2],
    )
    assert (
        s.accelerator,
        s.devices,
        s.precision,
        s.strategy,
        s.deterministic,
    ) == expected


# ----------------------------------------------------------------- bad input
def _bad_cases():
    x, y = _tiny_images(0, n=20)
    return [
        ({"accelerator": "tpu"}, "accelerator"),
        ({"precision": "64"}, "precision"),
        ({"devices": 0}, "devices"),
        ({"n_classes": 0}, "n_classes"),
        ({"n_classes": 2}, "`y`"),  # labels 0..2 out of range for C = 2
        ({"y": y - 1}, "`y`"),
        ({"y": y[:10]}, "`y`"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 21}, "batch_size"),
        ({"max_steps": 0}, "max_steps"),
        ({"x": x * 2}, "[0, 1]"),
        ({"x": np.zeros((20, 1, 6, 8), np.float32)}, "divisible by 4"),
        ({"x": np.zeros((20, 8), np.float32) + np.nan}, "finite"),
        ({"x": np.zeros((20, 3, 8), np.float32)}, "shape"),
    ]


@pytest.mark.parametrize(("override", "match"), _bad_cases())
def test_bad_input(override, match):
    x, y = _tiny_images(0, n=20)
    kw = {"x": x, "y": y, "n_classes": 3, "epochs": 1, "seed": 0, "batch_size": 4}
    kw.update(override)
    with pytest.raises(ValueError, match=match):
        train_gan(**kw)


def test_gpu_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    x, y = _tiny_images(0, n=20)
    with pytest.raises(ValueError, match="`accelerator` is 'gpu' but CUDA"):
        train_gan(x, y, n_classes=3, epochs=1, seed=0, accelerator="gpu")


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (
            lambda x, y: train_gan(
                x.astype(np.float64), y, n_classes=3, epochs=1, seed=0
            ),
            TypeError,
        ),
        (
            lambda x, y: train_gan(
                x, y.astype(np.int32), n_classes=3, epochs=1, seed=0
            ),
            TypeError,
        ),
        (lambda x, y: train_gan(x, y, n_classes=3.0, epochs=1, seed=0), TypeError),
    ],
)
def test_bad_types(call, exc):
    x, y = _tiny_images(0, n=20)
    with pytest.raises(exc):
        call(x, y)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"kind": "audio"}, "kind"),
        ({"class_frequencies": [1.0, 1.0]}, "class_frequencies"),
        ({"class_frequencies": [1.0, -1.0, 1.0]}, "class_frequencies"),
        ({"lr": 0.0}, "lr"),
        ({"betas": (0.5, 1.0)}, "betas"),
        ({"data_mean": [0.0]}, "data_mean"),
        ({"kind": "vector", "sample_shape": (2,)}, "data_mean"),
        (
            {
                "kind": "vector",
                "sample_shape": (2,),
                "data_mean": [0, 0],
                "data_std": [1],
            },
            "data_std",
        ),
    ],
)
def test_module_bad_input(kw, match):
    base = {
        "kind": "image",
        "sample_shape": (1, 8, 8),
        "n_classes": 3,
        "class_frequencies": [1.0, 1.0, 1.0],
        "width": 4,
    }
    with pytest.raises(ValueError, match=match):
        GANModule(**{**base, **kw})


@pytest.mark.gpu
def test_gpu_bf16_training_and_sampling_matches_cpu():
    # Prepare
    x, y = _tiny_images(0)

    # Execute
    module, _, stats = _train(x, y, 3, accelerator="gpu", devices=1)
    on_gpu = generate(module, [0, 1, 2], seed=0, device="cuda")
    on_cpu = generate(module, [0, 1, 2], seed=0, device="cpu")

    # Assert: fp32 sampling on both; cuDNN vs CPU kernels differ by ~1e-6
    assert stats.settings.accelerator == "gpu"
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4)
