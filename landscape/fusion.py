"""BatchNorm folded into the layer before it, for the many eval-mode passes of a surface.

In eval mode a BatchNorm is a per-channel affine map, so ``bn(conv(x))`` equals one convolution
with weight ``W * s`` and bias ``(b - mean) * s + beta``, where ``s = gamma / sqrt(var + eps)``:
one pass over the activations fewer per pair. A surface moves the weights at every grid point,
so `fold_batchnorm` builds a *twin* of the model that shares every module with it except the
folded layers, and `FoldedModel.sync` recomputes those from the live (shifted) weights in a
few small ops per pair. Results differ from the unfolded model only by float rounding.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn

from .errors import LandscapeError

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# Producers whose output is a fresh tensor (never a view of an input or a weight), so a ReLU
# that is their only user may overwrite it.
_FRESH_MODULES = (*_CONVS, nn.Linear, *_NORMS)
_FRESH_FUNCTIONS = (operator.add, torch.add, operator.mul, torch.mul)


class _LeafTracer(torch.fx.Tracer):
    """torch.nn layers and every module without children are called whole, never traced into."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return super().is_leaf_module(m, qualname) or next(m.children(), None) is None


@dataclass
class _Pair:
    layer: nn.Module   # the model's own conv / linear (read at every sync, never written)
    norm: nn.Module    # the model's own BatchNorm (read at every sync, never written)
    folded: nn.Module  # the twin's layer holding the folded weight and bias


class FoldedModel(nn.Module):
    """The model with BatchNorm folded away; call `sync` after the model's weights change.

    Every submodule but the folded layers is the model's own object, so moving the model's
    tensors in place (`landscape.params.WeightShifter`) moves the twin's too; the folded
    layers follow after `sync`. Use it in eval mode only: the folded layers assume the
    BatchNorms use their running statistics.
    """

    def __init__(self, graph_module: torch.fx.GraphModule, pairs: list[_Pair], relu_inplace: int = 0):
        super().__init__()
        self.graph_module = graph_module
        self._pairs = pairs
        self.n_folded = len(pairs)
        self.n_relu_inplace = relu_inplace
        self.sync()

    def forward(self, *args, **kwargs):
        return self.graph_module(*args, **kwargs)

    @torch.no_grad()
    def sync(self) -> None:
        """Recompute every folded weight and bias in place from the model's current tensors.

        A folded weight takes the memory layout of the model's weight it comes from (so a model
        switched to channels-last after folding gets channels-last folded weights).
        """
        pairs = self._pairs
        if not pairs:
            return
        norms = [p.norm for p in pairs]
        scale = torch._foreach_add([n.running_var for n in norms], [float(n.eps) for n in norms])
        torch._foreach_rsqrt_(scale)
        affine = [(s, n) for s, n in zip(scale, norms) if n.weight is not None]
        if affine:
            torch._foreach_mul_([s for s, _ in affine], [n.weight for _, n in affine])
        bias = [n.running_mean if p.layer.bias is None else torch.sub(p.layer.bias, n.running_mean)
                for p, n in zip(pairs, norms)]
        bias = torch._foreach_mul(bias, scale)
        unbiased = [b for p, b in zip(pairs, bias) if p.layer.bias is None]
        if unbiased:
            torch._foreach_neg_(unbiased)
        shifted = [(b, n) for b, n in zip(bias, norms) if n.bias is not None]
        if shifted:
            torch._foreach_add_([b for b, _ in shifted], [n.bias for _, n in shifted])
        torch._foreach_copy_([p.folded.bias for p in pairs], bias)
        for p, s in zip(pairs, scale):
            w, fw = p.layer.weight, p.folded.weight
            if fw.stride() != w.stride():  # the model changed layout: follow it
                fw.data = torch.empty_like(w)
            torch.mul(w, s.view(-1, *([1] * (w.dim() - 1))), out=fw)


class _LiveFold(nn.Module):
    """``norm(layer(x))`` as one layer whose weight and bias are computed from the live tensors at
    every call, so gradients (and second derivatives) reach the layer's and the norm's parameters."""

    def __init__(self, layer: nn.Module, norm: nn.Module):
        super().__init__()
        self.layer, self.norm = layer, norm  # the model's own modules: their parameters, not copies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer, norm = self.layer, self.norm
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight
        bias = -norm.running_mean * scale if layer.bias is None else (layer.bias - norm.running_mean) * scale
        if norm.bias is not None:
            bias = bias + norm.bias
        weight = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))
        if isinstance(layer, nn.Linear):
            return nn.functional.linear(x, weight, bias)
        return layer._conv_forward(x, weight, bias)


def _folded_layer(layer: nn.Module) -> nn.Module:
    """An uninitialized copy of ``layer``'s configuration with a bias (no RNG drawn, no init run)."""
    w = layer.weight
    if isinstance(layer, nn.Linear):
        new = nn.utils.skip_init(nn.Linear, layer.in_features, layer.out_features, bias=True,
                                 device=w.device, dtype=w.dtype)
    else:
        new = nn.utils.skip_init(type(layer), layer.in_channels, layer.out_channels, layer.kernel_size,
                                 stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                 groups=layer.groups, bias=True, padding_mode=layer.padding_mode,
                                 device=w.device, dtype=w.dtype)
    new.weight.data = torch.empty_like(w)  # same memory layout as the model's weight
    new.requires_grad_(False)
    return new.eval()


def _shapes(gm: torch.fx.GraphModule, example: torch.Tensor | None) -> dict | None:
    """Output metadata (``TensorMetadata``: shape, dtype, ...) of every tensor node on a two-sample
    example, or None without one."""
    if example is None:
        return None
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        with torch.inference_mode():
            ShapeProp(gm).propagate(example[:2])
    except Exception:  # noqa: BLE001 - shape checks are optional: fold only what needs none
        return None
    return {n: n.meta["tensor_meta"] for n in gm.graph.nodes
            if isinstance(n.meta.get("tensor_meta"), torch.fx.passes.shape_prop.TensorMetadata)}


def _relu_inplace(gm: torch.fx.GraphModule, modules: dict[str, nn.Module]) -> int:
    """Make each out-of-place ReLU whose input is a fresh, single-use tensor run in place.

    The graph node is rewritten (``torch.relu_``); the shared ``nn.ReLU`` modules are untouched.
    """
    count = 0
    for node in list(gm.graph.nodes):
        is_relu = (node.op == "call_module" and type(modules.get(node.target)) is nn.ReLU
                   and not modules[node.target].inplace) or \
                  (node.op == "call_function" and node.target in (torch.relu, nn.functional.relu)
                   and not node.kwargs.get("inplace", False) and len(node.args) == 1)
        if not is_relu or len(node.args) != 1 or not isinstance(node.args[0], torch.fx.Node):
            continue
        src = node.args[0]
        fresh = (src.op == "call_module" and type(modules.get(src.target)) in _FRESH_MODULES) or \
                (src.op == "call_function" and src.target in _FRESH_FUNCTIONS and not src.kwargs.get("out"))
        if not fresh or len(src.users) != 1:
            continue
        with gm.graph.inserting_after(node):
            new = gm.graph.call_function(torch.relu_, (src,))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        count += 1
    return count


def _add_inplace(gm: torch.fx.GraphModule, modules: dict[str, nn.Module], metas: dict | None) -> int:
    """Make each ``a + b`` whose ``a`` (or ``b``) is a layer's fresh output used by nothing else run as
    ``a.add_(b)``: a ResNet's residual sums, one allocation fewer per block (ResNet-20 at batch 32,
    1 thread, paired over 8 rounds: 0.97x the folded twin's forward). Only where the example showed
    the sum with that output's shape and dtype, so the in-place sum is the tensor the plain one is.
    Run after `_relu_inplace`, whose test for a fresh input knows only the plain sum.
    """
    if metas is None:
        return 0
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in (operator.add, torch.add) or len(node.args) != 2 \
                or node.kwargs or node not in metas:
            continue
        for into, other in (node.args, node.args[::-1]):
            same = isinstance(into, torch.fx.Node) and into in metas and \
                (metas[into].shape, metas[into].dtype) == (metas[node].shape, metas[node].dtype)
            if same and into.op == "call_module" and type(modules.get(into.target)) in _FRESH_MODULES \
                    and len(into.users) == 1:
                with gm.graph.inserting_after(node):
                    new = gm.graph.call_method("add_", (into, other))
                node.replace_all_uses_with(new)
                gm.graph.erase_node(node)
                count += 1
                break
    return count


def fold_batchnorm(model: nn.Module, example: torch.Tensor | None = None,
                   relu_inplace: bool = True, required: bool = False,
                   live: bool = False) -> FoldedModel | torch.fx.GraphModule | None:
    """A `FoldedModel` twin of ``model`` with every foldable BatchNorm folded, or None.

    Folded: a Conv1d/2d/3d (Linear -> BatchNorm1d too, when ``example`` inputs show the linear
    output is 2D) whose only user is an eval-mode BatchNorm with running statistics. None when the
    model cannot be traced by torch.fx, is in training mode, or has no such pair; with
    ``required=True`` that case raises a `LandscapeError` whose one line says which it was.
    ``relu_inplace`` also runs each ReLU in place where its input is a fresh tensor used by nothing
    else (and, given ``example``, each residual sum into such a tensor, `_add_inplace`), saving an
    allocation and a pass per layer (1 CPU thread, per point over the folded twin
    without it: ResNet-20 0.87-0.94, digits convnet 0.80-0.94 channels-last and 0.94-1.04
    contiguous; glibc's page faults on big buffers make single settings swing further either way).
    """
    def no(reason: str) -> None:
        if required:
            raise LandscapeError(f"BatchNorm cannot be folded: {reason}")
        return None

    if model.training:
        return no("the model is in training mode (BatchNorm uses batch statistics there)")
    try:
        graph = _LeafTracer().trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure means "run the model as it is"
        first = (str(e).strip().splitlines() or [""])[0][:160]
        return no(f"torch.fx cannot trace {type(model).__name__} ({type(e).__name__}: {first})")
    gm = torch.fx.GraphModule(model, graph)
    # Share the model's own submodule trees (GraphModule made fresh containers on the way to the leaves).
    for name in list(gm._modules):
        gm._modules[name] = model._modules[name]
    modules = dict(gm.named_modules())
    metas = _shapes(gm, example)
    ranks = None if metas is None else {n: len(m.shape) for n, m in metas.items()}

    pairs: list[_Pair] = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(modules.get(node.target)) not in _NORMS:
            continue
        norm = modules[node.target]
        src = node.args[0] if node.args else None
        if norm.training or norm.running_mean is None or norm.running_var is None or len(node.args) != 1 \
                or node.kwargs or not isinstance(src, torch.fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        layer = modules.get(src.target)
        if type(layer) in _CONVS:
            ok = ranks is None or ranks.get(src) == layer.weight.dim()  # batched: (N, C, *spatial)
        elif type(layer) is nn.Linear and type(norm) is nn.BatchNorm1d:
            ok = ranks is not None and ranks.get(src) == 2  # features on dim 1, as BatchNorm1d reads them
        else:
            ok = False
        if not ok or layer.weight.shape[0] != norm.num_features:
            continue
        name = f"_folded_{len(pairs)}"
        folded = _LiveFold(layer, norm) if live else _folded_layer(layer)
        gm.add_submodule(name, folded)
        with gm.graph.inserting_after(src):
            new = gm.graph.call_module(name, src.args, src.kwargs)
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        gm.graph.erase_node(src)
        pairs.append(_Pair(layer, norm, folded))
    if not pairs:
        return no(f"{type(model).__name__} has no convolution followed only by an eval-mode BatchNorm")
    n_relu = 0
    if relu_inplace and not live:
        n_relu = _relu_inplace(gm, dict(gm.named_modules()))
        _add_inplace(gm, dict(gm.named_modules()), _shapes(gm, example))  # shapes of the folded graph
    gm.graph.lint()
    gm.recompile()
    if live:
        gm.n_folded = len(pairs)
        return gm
    return FoldedModel(gm, pairs, n_relu)
