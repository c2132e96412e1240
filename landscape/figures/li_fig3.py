"""Li et al. 2018, Fig. 3: filter-normalized landscapes of small- and large-batch minima.

Four models, {small, large batch} x {weight decay 0, 5e-4}, each seen along a filter-normalized
random direction (1D: loss on the left axis, accuracy on the right, train solid, test dashed)
and in a filter-normalized random plane (2D contours of the training loss). Li et al.'s point:
with filter normalization the sharpness of the minimum tracks the test error; without it, weight
decay's effect on the weight scale makes the comparison meaningless. All four 1D panels share
one loss axis and all four contour panels share their levels, so widths compare across panels.
"""
from __future__ import annotations

import numpy as np

from . import FigureResult, register_figure
from .common import final_test_error, loss_rise, pct, run_title

ALPHA = 0.5  # where the 1D sharpness proxy is read off


@register_figure("li_fig3", "Li et al. Fig. 3: 1D and 2D filter-normalized landscapes, small vs large batch, "
                            "weight decay 0 and 5e-4")
def make(ctx) -> FigureResult:
    s, sc = ctx.scale.study, ctx.scale
    x1 = np.linspace(-1, 1, sc.line_points)
    x2 = np.linspace(-1, 1, sc.plane_points)
    panels = []
    for wd in s.weight_decays:
        for bs in (s.small, s.large):
            record = ctx.study_run(bs, wd)
            ckpt = ctx.study_checkpoint(bs, wd)
            name = f"li_fig3/bs{bs}_wd{wd:g}"
            line = ctx.surface(name, ckpt, x1)
            plane = ctx.surface(name, ckpt, x2, x2)
            panels.append((wd, bs, final_test_error(record), line, plane))
    if not ctx.is_root:
        return FigureResult()

    from ..plot import contour, plot_curves
    from ..plot.canvas import new_figure
    from ..plot.levels import contour_levels

    top = float(min(5.0, max(np.nanmax(p[3]["train_loss"]) for p in panels)))
    # One set of levels for all four planes, starting at the deepest level every panel reaches: a
    # minimum at loss 1e-4 would otherwise get rings the others cannot have, and look sharper for it.
    floor = 1.5 * max(float(np.nanmin(p[4]["train_loss"])) for p in panels)
    levels = contour_levels(np.concatenate([p[4]["train_loss"].ravel() for p in panels]), 10, vmin=floor).values
    fig = new_figure((4.1 * len(panels), 7.6))
    grid = fig.add_gridspec(2, len(panels), height_ratios=[1.0, 1.15])
    numbers: dict = {}
    for k, (wd, bs, err, line, plane) in enumerate(panels):
        title = run_title(wd, bs, err)
        axes = plot_curves(line.x, train_loss=line["train_loss"], test_loss=line["test_loss"],
                           train_acc=line["train_acc"], test_acc=line["test_acc"], vmax=top,
                           ax=fig.add_subplot(grid[0, k]), title=title, xlabel=r"$\alpha$ (filter-normalized)")
        axes.loss.set_ylim(0, top)
        handles = axes.loss.get_legend().legend_handles
        axes.loss.get_legend().remove()  # one legend for the figure, at the bottom: no headroom needed
        axes.acc.set_ylim(-2, 102)
        contour(plane.x, plane.y, plane["train_loss"], levels=levels, ax=fig.add_subplot(grid[1, k]),
                title=f"train loss, {title}", xlabel=r"$\alpha$", ylabel=r"$\beta$")
        numbers[f"bs{bs}_wd{wd:g}"] = {
            "batch_size": bs, "weight_decay": wd, "test_error": err,
            "train_loss": float(np.interp(0.0, line.x, line["train_loss"])),
            f"loss_rise_at_{ALPHA:g}": loss_rise(line.x, line["train_loss"], ALPHA),
            "plane_fraction_below_0.1": float(np.mean(plane["train_loss"] < 0.1)),
        }
    fig.suptitle(f"{s.model} on {s.dataset}: filter-normalized landscapes of small-batch ({s.small}) and "
                 f"large-batch ({s.large}) minima, weight decay {' and '.join(f'{w:g}' for w in s.weight_decays)} "
                 f"(Li et al. 2018, Fig. 3)", fontsize=11)
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8.5, frameon=False)
    paths = ctx.save(fig, "li_fig3")
    findings = []
    for wd in s.weight_decays:
        small, large = numbers[f"bs{s.small}_wd{wd:g}"], numbers[f"bs{s.large}_wd{wd:g}"]
        rs, rl = small[f"loss_rise_at_{ALPHA:g}"], large[f"loss_rise_at_{ALPHA:g}"]
        findings.append(
            f"wd={wd:g}: train-loss rise at |alpha|={ALPHA:g} is {rs:.3g} (batch {s.small}) vs {rl:.3g} (batch "
            f"{s.large}): the large-batch minimum is {'sharper' if rl > rs else 'not sharper'} ({rl / rs:.1f}x); "
            f"test error {pct(small['test_error'])} vs {pct(large['test_error'])} "
            f"({'large batch worse' if large['test_error'] > small['test_error'] else 'large batch not worse'}, "
            f"one seed; see keskar_table for the spread over seeds)")
    return FigureResult(paths=paths, numbers=numbers, findings=findings)
