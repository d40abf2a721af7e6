"""convviz.train: config checks, learning on the bundled sample, stop(), repeatability, the CLI."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from convviz.data import load_sample
from convviz.model import ScratchCNN, load_model
from convviz.train import Adam, History, TrainConfig, TrainingJob, cross_entropy, evaluate, train
from convviz.train_cli import main


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def tiny(sample):
    """1,000 training and 200 test digits of the sample: enough for the engine's mechanics."""
    (x_train, y_train), (x_test, y_test) = sample
    return (x_train[::5], y_train[::5]), (x_test[::5], y_test[::5])


def small_model(seed=0):
    return ScratchCNN.from_preset("fast", seed=seed, filters=(4, 8))


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be an integer >= 1, got epochs=0"),
    ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got batch_size=2.5"),
    ({"learning_rate": 0}, r"learning_rate must be a number in \(0, 1\], got learning_rate=0"),
    ({"learning_rate": float("nan")}, "got learning_rate=nan"),
    ({"seed": -1}, "seed must be an integer >= 0, got seed=-1"),
])
def test_train_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_cross_entropy_matches_tensorflow():
    logits = tf.constant(np.random.default_rng(0).normal(size=(6, 10)) * 5, tf.float32)
    labels = tf.constant([0, 3, 9, 2, 2, 7], tf.int32)
    expected = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    np.testing.assert_allclose(cross_entropy(logits, labels).numpy(), expected.numpy(), rtol=1e-6)


def test_adam_matches_keras_adam():
    start = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    ours, ref = tf.Variable(start), tf.Variable(start)
    adam, keras_adam = Adam([ours], learning_rate=0.01), tf.keras.optimizers.Adam(learning_rate=0.01)
    for i in range(5):
        grad = tf.constant(np.random.default_rng(10 + i).normal(size=(3, 4)), tf.float32)
        adam.apply([grad])
        keras_adam.apply_gradients([(grad, ref)])
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_training_on_the_sample_reaches_90_percent(sample):
    """237 steps (3 epochs of 5,000 digits, batch 64) of the fast preset with 8 and 16 filters (reaches ~95%)."""
    model = ScratchCNN.from_preset("fast", seed=0, filters=(8, 16))
    history = train(model, sample, TrainConfig(epochs=3, batch_size=64, learning_rate=3e-3, seed=0))
    assert history.status == "finished" and len(history.batch_loss) == 3 * 79
    assert history.epoch_test_accuracy[-1] > 0.90
    assert np.mean(history.batch_loss[-20:]) < np.mean(history.batch_loss[:20]) / 3
    loss, accuracy, predicted, probabilities = evaluate(model, *sample[1])
    assert accuracy == pytest.approx(history.epoch_test_accuracy[-1])
    assert loss == pytest.approx(history.epoch_test_loss[-1], rel=1e-5)
    assert predicted.shape == (1000,) and probabilities.shape == (1000, 10)
    assert (predicted == sample[1][1]).mean() == accuracy


def test_same_seed_same_history_different_seed_different(tiny):
    config = TrainConfig(epochs=2, batch_size=100, seed=7)
    runs = []
    for model_seed, train_seed in ((0, 7), (0, 7), (0, 8)):
        model = small_model(model_seed)
        history = train(model, tiny, TrainConfig(epochs=config.epochs, batch_size=config.batch_size, seed=train_seed))
        runs.append((history, model.weights()))
    (h1, w1), (h2, w2), (h3, _) = runs
    assert len(h1.batch_loss) == 20 and len(h1.epoch_test_accuracy) == 2
    for key in ("batch_loss", "batch_accuracy", "epoch_test_loss", "epoch_test_accuracy"):
        np.testing.assert_allclose(getattr(h1, key), getattr(h2, key), atol=1e-5, rtol=0)
    for key in w1:
        np.testing.assert_allclose(w1[key], w2[key], atol=1e-5, rtol=0)
    assert not np.allclose(h1.batch_loss, h3.batch_loss, atol=1e-5)  # other shuffling and dropout masks


def test_stop_event_ends_after_the_current_batch(tiny):
    stop = threading.Event()
    model = small_model()
    before = model.weights()

    def on_batch(history):
        if len(history.batch_loss) == 4:
            stop.set()

    history = train(model, tiny, TrainConfig(epochs=3, batch_size=100), on_batch=on_batch, stop_event=stop)
    assert history.status == "stopped"
    assert len(history.batch_loss) == 4 and history.batch == 4 and history.epoch == 0
    assert history.epoch_test_accuracy == []  # stopped mid-epoch: no evaluation
    assert not np.array_equal(before["dense/w"], model.weights()["dense/w"])  # the 4 steps were kept


def test_training_job_runs_in_the_background_and_stops_mid_epoch(sample):
    model = small_model()
    job = TrainingJob(model, sample, TrainConfig(epochs=2, batch_size=32))
    assert job.status == "pending" and job.snapshot()["batches_per_epoch"] == 157
    job.start()
    deadline = time.monotonic() + 60
    while job.snapshot()["batch"] < 3 and time.monotonic() < deadline:
        assert job.status == "running"
        time.sleep(0.02)
    job.stop()
    assert job.join(timeout=60)
    snap = job.snapshot()
    assert snap["status"] == job.status == "stopped" and snap["error"] is None
    assert 3 <= snap["batch"] < snap["batches_per_epoch"] and snap["epoch"] == 0
    assert len(snap["batch_loss"]) == len(snap["batch_accuracy"]) == snap["batch"]
    assert snap["samples_per_second"] > 0 and snap["elapsed_s"] > 0 and snap["eta_s"] == 0.0
    assert job.model is model
    snap["batch_loss"].append(99.0)  # a snapshot is a copy
    assert 99.0 not in job.snapshot()["batch_loss"]
    with pytest.raises(RuntimeError, match="already started"):
        job.start()


def test_training_job_finishes_with_per_epoch_test_accuracy(tiny):
    job = TrainingJob(small_model(), tiny, TrainConfig(epochs=2, batch_size=250)).start()
    assert job.join(timeout=120)
    snap = job.snapshot()
    assert snap["status"] == "finished" and snap["epoch"] == 2 and len(snap["batch_loss"]) == 8
    assert len(snap["epoch_test_accuracy"]) == len(snap["epoch_test_loss"]) == 2
    assert all(0.0 <= a <= 1.0 for a in snap["epoch_test_accuracy"])


def test_training_job_reports_failure_instead_of_raising(tiny):
    class Broken(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(1.0)

        def __call__(self, x, training=False, seed=None):
            raise RuntimeError("boom inside the model")

    job = TrainingJob(Broken(), tiny, TrainConfig()).start()
    assert job.join(timeout=60)
    assert job.status == "failed" and "boom inside the model" in job.error


@pytest.mark.parametrize("data, message", [
    ("not data", r"data must be \(\(x_train, y_train\), \(x_test, y_test\)\)"),
    (((np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8)), (np.zeros((2, 27, 28), np.uint8), np.zeros(2))),
     r"x_test must have shape .* got \(2, 27, 28\)"),
    (((np.zeros((4, 28, 28), np.uint8), np.full(4, 12)), (np.zeros((2, 28, 28), np.uint8), np.zeros(2, int))),
     "y_train must hold labels 0-9, got min=12 max=12"),
])
def test_bad_data_is_rejected_before_any_thread_starts(data, message):
    with pytest.raises(ValueError, match=message):
        TrainingJob(small_model(), data, TrainConfig())


def test_history_snapshot_has_the_contract_keys():
    assert set(History().snapshot()) == {
        "batch_loss", "batch_accuracy", "epoch_test_loss", "epoch_test_accuracy", "epoch", "batch",
        "batches_per_epoch", "epochs", "samples_per_second", "elapsed_s", "eta_s", "status", "error"}


def test_history_snapshot_values_after_a_real_short_run(tiny):
    """The values a UI polls, after 2 epochs of 4 batches (1,000 digits, batch 300: the last batch has 100)."""
    checkpoints = []
    config = TrainConfig(epochs=2, batch_size=300, learning_rate=3e-3, seed=0)
    job = TrainingJob(small_model(), tiny, config, on_checkpoint=lambda model, snap: checkpoints.append(snap))
    assert job.snapshot()["status"] == "pending" and job.snapshot()["batch_loss"] == []
    assert job.start().join(timeout=300)
    snap = job.snapshot()
    assert snap["status"] == "finished" and snap["error"] is None, snap["error"]
    assert (snap["epochs"], snap["batches_per_epoch"], snap["epoch"], snap["batch"]) == (2, 4, 2, 4)
    for key, count in (("batch_loss", 8), ("batch_accuracy", 8), ("epoch_test_loss", 2), ("epoch_test_accuracy", 2)):
        values = snap[key]
        assert isinstance(values, list) and len(values) == count, (key, values)
        assert all(type(v) is float and np.isfinite(v) for v in values), (key, values)
    assert all(v > 0 for v in snap["batch_loss"] + snap["epoch_test_loss"])
    assert all(0.0 <= v <= 1.0 for v in snap["batch_accuracy"] + snap["epoch_test_accuracy"])
    # an accuracy is a count of right answers over the batch (300, 300, 300, 100) or the 200 test digits
    sizes = [300, 300, 300, 100] * 2
    assert all(abs(a * n - round(a * n)) < 1e-3 for a, n in zip(snap["batch_accuracy"], sizes)), snap["batch_accuracy"]
    assert all(abs(a * 200 - round(a * 200)) < 1e-6 for a in snap["epoch_test_accuracy"])
    # the last epoch's test figures are those of the final weights
    (_, _), (x_test, y_test) = tiny
    loss, accuracy, _, _ = evaluate(job.model, x_test, y_test)
    assert snap["epoch_test_loss"][-1] == pytest.approx(loss, rel=1e-5)
    assert snap["epoch_test_accuracy"][-1] == pytest.approx(accuracy)
    assert type(snap["samples_per_second"]) is float and snap["samples_per_second"] > 0
    assert type(snap["elapsed_s"]) is float and 0 < snap["elapsed_s"] < 300
    assert snap["eta_s"] == 0.0
    # progress: the checkpoint after epoch 1 saw 4 batches and one test evaluation, then the run went on
    first = checkpoints[0]
    assert (first["epoch"], first["batch"], len(first["batch_loss"]), len(first["epoch_test_loss"])) == (1, 4, 4, 1)
    assert first["batch_loss"] == snap["batch_loss"][:4] and first["epoch_test_loss"] == snap["epoch_test_loss"][:1]
    assert first["status"] == "running" and 0 < first["elapsed_s"] <= snap["elapsed_s"] and first["eta_s"] > 0
    assert checkpoints[-1] == snap
    # a snapshot is a copy: changing it changes nothing in the job
    snap["batch_loss"].clear()
    assert len(job.snapshot()["batch_loss"]) == 8


def test_cli_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--preset", "--filters", "--kernel-size", "--dropout", "--epochs", "--batch-size",
                   "--learning-rate", "--seed", "--data", "--sample", "--out"):
        assert option in text


def test_cli_trains_saves_and_prints_test_accuracy(tmp_path, capsys):
    out = tmp_path / "cli.npz"
    code = main(["--sample", "--preset", "fast", "--filters", "4", "8", "--epochs", "1", "--batch-size", "100",
                 "--learning-rate", "0.003", "--out", str(out)])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("test_accuracy=")
    accuracy = float(lines[-1].split("=")[1])
    model = load_model(out)
    (_, _), (x_test, y_test) = load_sample()
    assert accuracy == pytest.approx((model.predict(x_test / 255.0).argmax(1) == y_test).mean(), abs=1e-4)
    assert accuracy > 0.5


def test_cli_reports_bad_options_and_missing_data(tmp_path, monkeypatch, capsys):
    assert main(["--sample", "--epochs", "0"]) == 2
    assert "epochs must be an integer >= 1" in capsys.readouterr().err
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "k"))
    monkeypatch.setenv("CONVVIZ_MNIST", str(tmp_path / "none.npz"))
    monkeypatch.setattr("convviz.data._download_to_cache", lambda cache: (_ for _ in ()).throw(OSError("offline")))
    assert main(["--epochs", "1"]) == 2
    assert "none.npz" in capsys.readouterr().err
