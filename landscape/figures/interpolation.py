"""The line between the small- and large-batch solutions (Goodfellow et al. 2015; Keskar et al. 2016, Fig. 3).

``theta(alpha) = (1 - alpha) theta_small + alpha theta_large`` (BN statistics interpolated too),
over alpha in [-0.5, 1.5] as Li et al. draw it and over Keskar et al.'s wider [-1, 2], with and
without weight decay. Keskar's signature: the loss rises faster past the large-batch end
(alpha > 1) than past the small-batch end (alpha < 0). Li et al.'s caveat is why this figure is
not enough on its own: without weight decay the two solutions have different weight scales, and
a 1D line cannot separate scale from sharpness. Both ranges come from the same evaluated points.
"""
from __future__ import annotations

import numpy as np

from . import FigureResult, register_figure
from .common import final_test_error, pct

RANGES = ((-0.5, 1.5), (-1.0, 2.0))
STEP_OUT = 0.25  # how far past each end the rise is read off


def _rise(x: np.ndarray, loss: np.ndarray, at: float, towards: float) -> float:
    return float(np.interp(towards, x, loss) - np.interp(at, x, loss))


@register_figure("interpolation", "1D interpolation between the small- and large-batch solutions, alpha in "
                                  "[-0.5, 1.5] and [-1, 2], with and without weight decay")
def make(ctx) -> FigureResult:
    s, sc = ctx.scale.study, ctx.scale
    x = np.linspace(min(r[0] for r in RANGES), max(r[1] for r in RANGES), sc.interpolation_points)
    lines = []
    for wd in s.weight_decays:
        small, large = ctx.study_checkpoint(s.small, wd), ctx.study_checkpoint(s.large, wd)
        line = ctx.surface(f"interpolation/wd{wd:g}", small, x, ckpt2=str(large))
        lines.append((wd, line, final_test_error(ctx.study_run(s.small, wd)),
                      final_test_error(ctx.study_run(s.large, wd))))
    if not ctx.is_root:
        return FigureResult()

    from ..plot import plot_curves
    from ..plot.canvas import new_figure

    fig = new_figure((11.5, 3.9 * len(lines)))
    grid = fig.add_gridspec(len(lines), len(RANGES))
    numbers, findings = {}, []
    marks = [(0.0, f"batch {s.small}"), (1.0, f"batch {s.large}")]
    for row, (wd, line, err_s, err_l) in enumerate(lines):
        for col, (lo, hi) in enumerate(RANGES):
            keep = (line.x >= lo - 1e-9) & (line.x <= hi + 1e-9)
            log = hi - lo > 2.5  # the wide range reaches losses orders of magnitude above the minima
            plot_curves(line.x[keep], **{k: line[k][keep] for k in ("train_loss", "test_loss", "train_acc", "test_acc")},
                        log=log, ax=fig.add_subplot(grid[row, col]), landmarks=marks,
                        xlabel=rf"$\alpha$: (1-$\alpha$) $\theta_{{{s.small}}}$ + $\alpha$ $\theta_{{{s.large}}}$",
                        title=f"WD={wd:g}: batch {s.small} (test error {pct(err_s)}) to batch {s.large} "
                              f"(test error {pct(err_l)}), " + rf"$\alpha \in [{lo:g}, {hi:g}]$")
        tl = line["train_loss"]
        inside = (line.x >= 0) & (line.x <= 1)
        entry = {
            "train_loss_small": float(np.interp(0.0, line.x, tl)), "train_loss_large": float(np.interp(1.0, line.x, tl)),
            "barrier": float(tl[inside].max() - max(np.interp(0.0, line.x, tl), np.interp(1.0, line.x, tl))),
            "rise_past_small": _rise(line.x, tl, 0.0, -STEP_OUT), "rise_past_large": _rise(line.x, tl, 1.0, 1 + STEP_OUT),
            "test_error_small": err_s, "test_error_large": err_l,
        }
        numbers[f"wd{wd:g}"] = entry
        sharper = entry["rise_past_large"] > entry["rise_past_small"]
        findings.append(
            f"wd={wd:g}: going {STEP_OUT:g} past the large-batch end the train loss changes by "
            f"{entry['rise_past_large']:+.3g}, going {STEP_OUT:g} past the small-batch end by "
            f"{entry['rise_past_small']:+.3g} "
            f"({'large-batch end sharper, as Keskar et al. report' if sharper else 'large-batch end not sharper'}); "
            f"barrier between them {entry['barrier']:.3g}")
    fig.suptitle(f"{s.model} on {s.dataset}: the line from the small-batch to the large-batch solution "
                 "(Goodfellow et al.; Keskar et al. Fig. 3)", fontsize=11)
    return FigureResult(paths=ctx.save(fig, "interpolation"), numbers=numbers, findings=findings)
