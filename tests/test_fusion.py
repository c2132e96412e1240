"""BatchNorm folding: the twin computes what the model computes, before and after weights move."""
import pytest
import torch
from torch import nn

import landscape
from landscape.errors import LandscapeError
from landscape.evaluation import channels_last_model
from landscape.fusion import fold_batchnorm
from landscape.params import WeightShifter

SHAPES = {"convnet": (1, 8, 8), "resnet20": (3, 32, 32), "vgg9": (3, 32, 32)}


def _with_bn_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so folding has something to get wrong."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.5, generator=g)
                m.running_var.uniform_(0.3, 3.0, generator=g)
                m.weight.normal_(1, 0.5, generator=g)
                m.bias.normal_(0, 0.5, generator=g)
    return model.eval()


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return _with_bn_stats(landscape.build_model(name, input_shape=SHAPES[name], num_classes=10))


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    return float((a - b).abs().max()) <= rel * float(a.abs().max())


def _run(model, x):
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_folded_twin_matches_model_and_follows_shifted_weights(name, layout):
    model = _model(name)
    x = torch.randn(6, *SHAPES[name], generator=torch.Generator().manual_seed(1))
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with channels_last_model(model, layout == "channels_last"):
        twin = fold_batchnorm(model, x, required=True)
        n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        assert twin.n_folded == n_bn  # every BN here follows a conv (vgg9: and one linear)
        assert _close(_run(model, x), _run(twin, x))
        for p in twin._pairs:  # folded weights in the model's layout
            assert p.folded.weight.stride() == p.layer.weight.stride()
        for kind in ("weights", "states"):  # states (ignore none) also moves every BN statistic and affine
            dirs = landscape.random_directions(model, 2, kind=kind, seed=3, ignore="biasbn" if kind == "weights" else "none")
            assert kind == "weights" or any(n.endswith("running_var") and d.abs().sum() > 0 for n, d in dirs[0].items())
            shifter = WeightShifter(model, dirs, kind)
            for coeffs in [(0.4, -0.3), (-0.5, 0.35)]:  # |a| + |b| < 1: no filter-normalized variance reaches 0
                shifter.set(coeffs)
                twin.sync()
                want = _run(model, x)
                assert torch.isfinite(want).all() and _close(want, _run(twin, x)), (kind, coeffs)
            shifter.restore()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "folding must not touch the model's tensors"


def test_twin_shares_every_module_but_the_folded_layers():
    model = _model("resnet20")
    twin = fold_batchnorm(model, torch.randn(2, 3, 32, 32))
    own = {id(m) for m in model.modules()}
    folded = {id(p.folded) for p in twin._pairs}
    for m in twin.graph_module.modules():
        if m is not twin.graph_module:
            assert (id(m) in own) != (id(m) in folded)
    # the in-place ReLUs are graph rewrites: the model's own ReLU modules are not changed
    vgg = _model("vgg9")
    flags = [m.inplace for m in vgg.modules() if isinstance(m, nn.ReLU)]
    fold_batchnorm(vgg, torch.randn(2, 3, 32, 32))
    assert flags == [m.inplace for m in vgg.modules() if isinstance(m, nn.ReLU)]


class _UsedTwice(nn.Module):
    """conv1's output feeds its BN and the sum: that pair must stay; conv2 -> bn2 folds."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv1(x)
        z = torch.relu(self.bn1(y) + y)
        return torch.relu(self.bn2(self.conv2(z))).flatten(1)


def test_conv_output_used_twice_is_not_folded():
    model = _with_bn_stats(_UsedTwice())
    x = torch.randn(5, 1, 6, 6)
    twin = fold_batchnorm(model, x)
    assert twin.n_folded == 1 and twin._pairs[0].layer is model.conv2
    assert _close(_run(model, x), _run(twin, x))


class _ReluOnInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(torch.relu(x))))


def test_relu_on_a_graph_input_stays_out_of_place():
    model = _with_bn_stats(_ReluOnInput())
    twin = fold_batchnorm(model)
    x = torch.randn(4, 2, 3, 3)
    x0 = x.clone()
    assert _close(_run(model, x), _run(twin, x))
    assert torch.equal(x, x0), "the twin must not overwrite its input"
    assert twin.n_relu_inplace == 1  # only the ReLU after the folded conv


class _Sums(nn.Module):
    """Sums into fresh layer outputs, whose other operand is the block's input (which must survive),
    a broadcast bias or a scalar; and a sum of two flattened views, which must stay out of place."""

    def __init__(self):
        super().__init__()
        self.a, self.bn_a = nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2)
        self.b = nn.Conv2d(2, 2, 1)
        self.c = nn.Conv2d(2, 2, 3, padding=1)
        self.bias = nn.Parameter(torch.randn(1, 2, 1, 1))

    def forward(self, x):
        y = torch.relu(self.bn_a(self.a(x)) + x)   # folded conv + input: in place into the conv's output
        z = self.b(y) + self.bias                  # a bias broadcast into the conv's output: in place
        w = self.bias + self.b(z)                  # the same, operands swapped: in place
        return (self.c(w) + w.mean()).flatten(1) + z.flatten(1)  # a scalar into a conv output: in place


def test_residual_sums_run_in_place_only_into_fresh_same_shape_outputs():
    model = _with_bn_stats(_Sums())
    x = torch.randn(3, 2, 5, 5)
    x0 = x.clone()
    twin = fold_batchnorm(model, x)
    code = twin.graph_module.code
    assert code.count(".add_(") == 4, code  # into the outputs of a (folded), b twice and c; not the flat sum
    assert _close(_run(model, x), _run(twin, x), rel=1e-6)
    assert torch.equal(x, x0), "the twin must not overwrite its input"
    assert ".add_(" not in fold_batchnorm(model).graph_module.code  # no example: shapes unknown, plain sums


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent Python control flow: torch.fx cannot trace this
            x = -x
        return self.bn(self.conv(x)).flatten(1)


@pytest.mark.parametrize("case, reason", [("untraceable", "cannot trace"), ("training", "training mode"),
                                          ("no_pairs", "no convolution followed")])
def test_unfoldable_models_give_none_or_a_one_line_reason(case, reason):
    model = {"untraceable": lambda: _with_bn_stats(_Branchy()), "training": lambda: _model("convnet").train(),
             "no_pairs": lambda: landscape.build_model("mlp").eval()}[case]()
    assert fold_batchnorm(model) is None
    with pytest.raises(LandscapeError, match=reason) as info:
        fold_batchnorm(model, required=True)
    assert "\n" not in str(info.value)


def test_linear_batchnorm_folds_only_when_its_input_is_known_2d():
    torch.manual_seed(0)
    mlp = _with_bn_stats(landscape.build_model("mlp", hidden=(16,), batchnorm=True))
    x = torch.randn(7, 1, 8, 8)
    assert fold_batchnorm(mlp) is None  # no example: the linear's output rank is unknown
    twin = fold_batchnorm(mlp, x)
    assert twin.n_folded == 1 and _close(_run(mlp, x), _run(twin, x))
    # (N, 4, 4) through Linear(4, 4): BatchNorm1d normalises dim 1, which is not the linear's features
    seq = _with_bn_stats(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
    assert fold_batchnorm(seq, torch.randn(3, 4, 4)) is None


@pytest.mark.parametrize("name", list(SHAPES))
def test_live_fold_has_the_models_values_gradients_and_hessian_products(name):
    """``live=True`` forms the folded weights from the live tensors at every call, so derivatives of
    any order reach the conv's and the BatchNorm's own parameters: float64 Hessian products through
    it equal those of the model as it is (an independent path: BatchNorm applied to activations)."""
    from landscape.risk import EmpiricalRisk

    model = _model(name).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, *SHAPES[name], generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (6,), generator=g)
    twin = fold_batchnorm(model, x, live=True)
    assert twin.n_folded == sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert _close(_run(model, x), _run(twin, x), rel=1e-12)
    folded, plain = (EmpiricalRisk(model, (x, y), batch_size=4, fold_bn=f) for f in (True, False))
    assert folded.product_model(next(iter(folded.batches))) is not model
    assert plain.product_model(next(iter(plain.batches))) is model
    _, g_folded = folded.loss_and_grad()
    _, g_plain = plain.loss_and_grad()
    assert _close(g_plain, g_folded, rel=1e-12)  # every parameter, the BatchNorms' gamma and beta included
    V = torch.randn(2, folded.num_params, generator=g, dtype=torch.float64)
    assert _close(plain.hmm(V), folded.hmm(V), rel=1e-10)
    assert not any(p.grad is not None for p in model.parameters())  # nothing leaks into .grad


def test_live_fold_falls_back_to_the_model_when_nothing_folds():
    from landscape.risk import EmpiricalRisk

    torch.manual_seed(0)
    mlp = landscape.build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[12])
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 10, (5,))
    risk = EmpiricalRisk(mlp, (x, y))
    assert risk.product_model(next(iter(risk.batches))) is mlp  # no BatchNorm: not even traced
