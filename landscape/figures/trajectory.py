"""Li et al. 2018, section 7: optimization paths on the PCA directions of their own snapshots.

For the small- and large-batch runs, with and without weight decay: the snapshots' top two
principal directions (relative to the final model), the training-loss contours in that plane,
and the path with its epochs. The axes give each direction's share of the path's variance; Li
et al. found the paths lie almost entirely in a low-dimensional space (a large share on PC1 and
PC2), which is what makes this projection meaningful where random directions show nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import FigureResult, register_figure
from .common import final_test_error, run_title


@register_figure("trajectory", "Li et al. section 7: training paths projected on their PCA directions, small vs "
                               "large batch, weight decay 0 and 5e-4")
def make(ctx) -> FigureResult:
    from ..trajectory import load_trajectory, prepare_trajectory_job
    from ..workflow import run_surface_job

    s, sc = ctx.scale.study, ctx.scale
    if not s.snapshot_every:
        return FigureResult(findings=["the study keeps no snapshots at this scale (snapshot_every unset)"])
    panels = []
    for wd in s.weight_decays:
        for bs in (s.small, s.large):
            run_dir = Path(ctx.study_run(bs, wd)["run_dir"])
            job = ctx.surface_job(f"trajectory/bs{bs}_wd{wd:g}", run_dir / "model.pt",
                                  np.linspace(-1, 1, sc.trajectory_points))
            job = prepare_trajectory_job(job, run_dir)
            surface = run_surface_job(job)
            panels.append((wd, bs, final_test_error(ctx.study_run(bs, wd)), surface, job.dir_file))
    if not ctx.is_root:
        return FigureResult()

    from ..plot.canvas import new_figure
    from ..trajectory import draw_trajectory

    cols = 2 if len(panels) > 2 else len(panels)
    rows = -(-len(panels) // cols)
    fig = new_figure((6.2 * cols, 4.1 * rows + 0.5))
    numbers, findings = {}, []
    for k, (wd, bs, err, surface, dir_file) in enumerate(panels):
        traj = load_trajectory(dir_file)
        ax = fig.add_subplot(rows, cols, k + 1)
        draw_trajectory(surface, traj, ax=ax, title=f"train loss, {run_title(wd, bs, err)}")
        ax.legend(loc="upper right", fontsize=6.5, framealpha=0.85)
        ev = [float(v) for v in traj.explained_variance]
        numbers[f"bs{bs}_wd{wd:g}"] = {"explained_variance": ev, "n_snapshots": len(traj.epochs),
                                       "path_length": float(np.sum(np.hypot(np.diff(traj.xs), np.diff(traj.ys))))}
        findings.append(f"batch {bs}, wd={wd:g}: PC1 + PC2 explain {100 * sum(ev):.1f}% of the path's variance "
                        f"({100 * ev[0]:.1f}% + {100 * ev[1]:.1f}%, {len(traj.epochs)} snapshots)")
    fig.suptitle(f"{s.model} on {s.dataset}: training paths on the first two principal directions of their snapshots "
                 f"(every {s.snapshot_every} epochs; Li et al. 2018, section 7)", fontsize=11)
    return FigureResult(paths=ctx.save(fig, "trajectory"), numbers=numbers, findings=findings)
