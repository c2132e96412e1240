import json

import pytest
import torch
import torch.nn.functional as F

import landscape
from landscape.cli import main
from landscape.data import LabeledData
from landscape.errors import LandscapeError
from landscape.train import init_model, train


@pytest.fixture(scope="module")
def digits():
    return landscape.get_dataset("digits", "train"), landscape.get_dataset("digits", "test")


def _small(data, n):
    return LabeledData(data.inputs[:n], data.targets[:n], name=data.name, num_classes=data.num_classes)


def test_same_seed_same_weights_other_seed_differs(digits):
    tr, te = digits
    tr = _small(tr, 300)
    runs = []
    for seed in (0, 0, 1):
        model = init_model("convnet", tr, seed=seed)
        train(model, tr, te, batch_size=32, lr=0.05, steps=15, seed=seed, progress=False)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_matches_hand_written_sgd_with_l2_and_momentum(digits):
    """Independent reference: plain tensors, the same shuffling generator, grad of loss + wd/2 |w|^2."""
    tr, _ = digits
    tr = _small(tr, 200)
    lr, mom, wd, bs, steps, seed = 0.05, 0.9, 1e-2, 64, 7, 3
    model = init_model("mlp", tr, seed=0, hidden=[16])
    ref = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    train(model, tr, batch_size=bs, lr=lr, momentum=mom, weight_decay=wd, steps=steps, seed=seed, progress=False,
          schedule="cosine", warmup_steps=2)
    sched = landscape.schedules.LRSchedule(lr, steps, "cosine", 2)
    gen = torch.Generator().manual_seed(seed)
    buf = {k: None for k in ref}
    x, y = tr.inputs, tr.targets
    per_epoch = len(x) // bs
    step = 0
    while step < steps:
        perm = torch.randperm(len(x), generator=gen)
        for b in range(per_epoch):
            if step == steps:
                break
            idx = perm[b * bs:(b + 1) * bs]
            h = x[idx].flatten(1)
            names = list(ref)
            for i in range(0, len(names) - 2, 2):
                h = torch.relu(h @ ref[names[i]].T + ref[names[i + 1]])
            out = h @ ref[names[-2]].T + ref[names[-1]]
            loss = F.cross_entropy(out, y[idx]) + 0.5 * wd * sum((w ** 2).sum() for w in ref.values())
            grads = torch.autograd.grad(loss, list(ref.values()))
            with torch.no_grad():
                for (k, w), g in zip(ref.items(), grads):
                    buf[k] = g.clone() if buf[k] is None else mom * buf[k] + g
                    w -= sched(step) * buf[k]
            step += 1
    for k, p in model.named_parameters():
        torch.testing.assert_close(p, ref[k].detach(), rtol=1e-5, atol=1e-6)


def test_meta_checkpoints_snapshots_and_target(digits, tmp_path):
    tr, te = digits
    model = init_model("convnet", tr, seed=0)
    model.eval()
    res = train(model, tr, te, batch_size=128, lr=0.1, epochs=3, snapshot_every=1, out_dir=tmp_path,
                target_error=0.5, weight_decay=5e-4, progress=False)
    assert not model.training  # handed back in the mode it came in
    meta = res.meta
    for key in ("model", "model_args", "dataset", "batch_size", "weight_decay", "lr", "epoch", "step", "seed",
                "train_loss", "train_acc", "test_loss", "test_acc", "wall_time"):
        assert key in meta, key
    assert meta["dataset"] == "digits" and meta["step"] == 3 * (len(tr) // 128) and meta["epoch"] == 3
    # the target step is the first evaluation whose test error is below the target
    first = next(h for h in res.history if h["test_error"] < 0.5)
    assert meta["steps_to_target"] == first["step"] and meta["time_to_target"] == first["train_time"]
    ck = landscape.load_checkpoint(tmp_path / "model.pt")
    loss, acc = landscape.evaluate(ck.model, te)
    assert loss == pytest.approx(ck.meta["test_loss"]) and acc == pytest.approx(ck.meta["test_acc"])
    assert ck.meta["weight_decay"] == 5e-4 and ck.meta["batch_size"] == 128
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [f"epoch_00{i}.pt" for i in range(4)]
    snap = landscape.load_checkpoint(tmp_path / "snapshots" / "epoch_003.pt")
    assert all(torch.equal(snap.model.state_dict()[k], v) for k, v in ck.model.state_dict().items())
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["status"] == "finished" and len(hist["history"]) == 3


def test_divergence_is_recorded_not_raised(digits):
    tr, te = digits
    model = init_model("mlp", _small(tr, 256), seed=0)
    res = train(model, _small(tr, 256), te, lr=1e6, batch_size=64, steps=30, progress=False)
    assert res.meta["diverged"] and res.meta["step"] < 30


@pytest.mark.parametrize("steps, eval_every, evaluated", [(4, 2, [2, 4]), (5, 2, [2, 4, 5])])
def test_test_set_is_evaluated_once_per_evaluation_step(digits, monkeypatch, steps, eval_every, evaluated):
    import landscape.train as train_module

    calls = []

    class Counting(train_module.Evaluator):
        def __call__(self):
            calls.append(1)
            return super().__call__()

    monkeypatch.setattr(train_module, "Evaluator", Counting)
    tr, te = digits
    res = train(init_model("mlp", _small(tr, 256), seed=0), _small(tr, 256), _small(te, 64), batch_size=64,
                steps=steps, eval_every=eval_every, progress=False)
    assert [h["step"] for h in res.history] == evaluated
    assert len(calls) == len(evaluated)  # the last step's evaluation is the final one, not run again
    assert res.meta["test_loss"] == res.history[-1]["test_loss"]
    assert res.meta["test_loss"] == pytest.approx(landscape.evaluate(res.model, _small(te, 64))[0], rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=10_000, epochs=1), "exceeds"),
    (dict(epochs=1, steps=3), "exactly one"),
    (dict(steps=3, optimizer="rmsprop"), "unknown optimizer"),
    (dict(steps=3, target_error=0.1), "test data"),
    (dict(epochs=1e308), r"epochs must be at most 8.+e\+14 \(2\*\*53 steps of 11 per epoch"),  # inf steps
])
def test_bad_arguments_are_clear_errors(digits, kwargs, match):
    tr, _ = digits
    with pytest.raises(LandscapeError, match=match):
        train(init_model("mlp", tr), tr, progress=False, **kwargs)


def test_cli_train_writes_checkpoint(tmp_path, capsys):
    assert main(["train", "--model", "mlp", "--steps", "5", "--batch-size", "64", "--lr-scaling", "sqrt",
                 "--base-batch-size", "16", "--out", str(tmp_path), "--no-progress", "--seed", "2"]) == 0
    meta = landscape.load_checkpoint(tmp_path / "model.pt").meta
    assert meta["lr"] == pytest.approx(0.2) and meta["seed"] == 2 and meta["step"] == 5
    assert main(["train", "--steps", "5", "--batch-size", "99999", "--out", str(tmp_path)]) == 2
    assert "exceeds" in capsys.readouterr().err
