"""Keskar et al. 2016, Tables 2-4: epsilon-sharpness of small- and large-batch minima, with accuracy.

For every seed of the small- and large-batch runs (with and without weight decay): train and
test accuracy, and Keskar's metric 2.1 on the training loss with eps 1e-3 and 5e-4, in the full
parameter space (A = I) and in a random 100-dimensional subspace, maximised by 10 L-BFGS-B
iterations. Written as Markdown and CSV (mean +- sd over seeds) and drawn as bars with one dot
per seed, so a difference can be read against the seed-to-seed spread.
"""
from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from . import FigureResult, register_figure
from .common import fmt_mean_sd, mean_sd, seeds_of


def _settings(ctx) -> list[tuple[str, float, int | None]]:
    sc = ctx.scale
    return [(f"{'full space' if p is None else f'{p}-dim subspace'}, eps {eps:g}", eps, p)
            for p in (None, sc.keskar_subspace) for eps in sc.keskar_eps]


def _sharpness(ctx, ckpt, eps: float, p: int | None) -> dict:
    from ..sharpness import keskar

    def run(ck) -> dict:
        r = keskar(ck.model, ctx.measure_data(), eps=eps, subspace_dim=p, max_iter=ctx.scale.keskar_max_iter,
                   seed=0, device=ctx.device)
        return {"value": float(r.value), "base_loss": float(r.base_loss), "max_loss": float(r.max_loss),
                "n_iter": int(r.n_iter), "n_evals": int(r.n_evals)}

    settings = {"eps": eps, "subspace_dim": p, "max_iter": ctx.scale.keskar_max_iter, "seed": 0,
                "samples": ctx.scale.measure_samples}
    return ctx.measure(ckpt, "keskar", settings, run)


@register_figure("keskar_table", "Keskar et al.'s table: epsilon-sharpness (1e-3, 5e-4; full space and a "
                                 "100-dim subspace) of small vs large batch, with test accuracy")
def make(ctx) -> FigureResult:
    s = ctx.scale.study
    records = ctx.study_records()
    if not ctx.is_root:
        return FigureResult()
    settings = _settings(ctx)
    rows = []
    from tqdm.auto import tqdm

    todo = [(wd, bs, r) for wd in s.weight_decays for bs in (s.small, s.large) for r in seeds_of(records, bs, wd)]
    for wd, bs, rec in tqdm(todo, desc="keskar sharpness", unit="model", disable=not ctx.progress, leave=False):
        ckpt = os.path.join(rec["run_dir"], "model.pt")
        row = {"batch_size": bs, "weight_decay": wd, "seed": rec["config"]["seed"],
               "train_acc": rec["final"]["train_acc"], "test_acc": rec["final"]["test_acc"]}
        for label, eps, p in settings:
            row[label] = _sharpness(ctx, ckpt, eps, p)["value"]
        rows.append(row)

    groups = [(wd, bs, [r for r in rows if r["batch_size"] == bs and r["weight_decay"] == wd])
              for wd in s.weight_decays for bs in (s.small, s.large)]
    head = ["weight decay", "batch size", "seeds", "train acc (%)", "test acc (%)"] + [lab for lab, _, _ in settings]
    table = []
    for wd, bs, members in groups:
        table.append([f"{wd:g}", f"{bs}", f"{len(members)}",
                      fmt_mean_sd([m["train_acc"] for m in members], 4, 100),
                      fmt_mean_sd([m["test_acc"] for m in members], 4, 100)]
                     + [fmt_mean_sd([m[lab] for m in members], 3) for lab, _, _ in settings])
    md = _markdown(ctx, head, table)
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "keskar_table.md").write_text(md)
    _write_csv(ctx.out / "keskar_table.csv", rows)
    paths = [ctx.out / "keskar_table.md", ctx.out / "keskar_table.csv"] + _draw(ctx, settings, groups, head, table)

    numbers, findings = {"runs": rows}, []
    for wd in s.weight_decays:
        g = {bs: [r for r in rows if r["batch_size"] == bs and r["weight_decay"] == wd] for bs in (s.small, s.large)}
        acc = {bs: [r["test_acc"] for r in g[bs]] for bs in g}
        parts = []
        for lab, _, _ in settings:
            vs, vl = ([r[lab] for r in g[bs]] for bs in (s.small, s.large))
            parts.append(f"{lab}: {np.mean(vs):.3g} vs {np.mean(vl):.3g} "
                         f"({'LB sharper' if np.mean(vl) > np.mean(vs) else 'LB not sharper'}{_beyond_noise(vs, vl)})")
        findings.append(f"wd={wd:g}, batch {s.small} vs {s.large}: test accuracy {fmt_mean_sd(acc[s.small], 4, 100)}% "
                        f"vs {fmt_mean_sd(acc[s.large], 4, 100)}%"
                        f"{_beyond_noise(acc[s.small], acc[s.large], ' (gap beyond seed noise)', ' (gap within seed noise)')}"
                        "; sharpness " + "; ".join(parts))
    return FigureResult(paths=paths, numbers=numbers, findings=findings)


def _beyond_noise(a: list[float], b: list[float], yes: str = ", beyond seed noise",
                  no: str = ", within seed noise") -> str:
    """Whether the means of ``a`` and ``b`` differ by more than two standard errors of the difference
    (Welch); says nothing with fewer than two seeds on either side."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return ""
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return yes if abs(b.mean() - a.mean()) > 2 * se else no


def _markdown(ctx, head: list[str], table: list[list[str]]) -> str:
    s = ctx.scale.study
    lines = [f"# Keskar et al.'s sharpness table ({ctx.scale.name} scale: {s.model} on {s.dataset})", "",
             f"Epsilon-sharpness (Keskar et al. 2016, metric 2.1, in percent of 1 + loss) of the training loss at "
             f"the final weights, maximised by {ctx.scale.keskar_max_iter} L-BFGS-B iterations; mean ± sd over "
             "seeds. Larger = sharper.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines) + "\n"


def _write_csv(path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue())


def _draw(ctx, settings, groups, head, table) -> list:
    from ..plot.canvas import new_figure

    s = ctx.scale.study
    fig = new_figure((11.5, 7.4))
    grid = fig.add_gridspec(2, 1, height_ratios=[1.0, 1.6])
    tax = fig.add_subplot(grid[0])
    tax.axis("off")
    wrapped = [h.replace(", eps", ",\neps").replace(" (%)", "\n(%)") for h in head]
    tab = tax.table(cellText=table, colLabels=wrapped, loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.auto_set_column_width(list(range(len(head))))  # long "mean ± sd" cells fit their column
    tab.scale(1.0, 1.9)
    for (r, _c), cell in tab.get_celld().items():
        cell.set_edgecolor("0.75")
        if r == 0:
            cell.set_facecolor("0.93")
            cell.set_height(cell.get_height() * 1.5)
    ax = fig.add_subplot(grid[1])
    n_groups = len(groups)
    width = 0.8 / n_groups
    colors = {(wd, bs): c for (wd, bs, _), c in zip(groups, ("#9ecae1", "#3182bd", "#fdae6b", "#e6550d"))}
    for k, (wd, bs, members) in enumerate(groups):
        xs = np.arange(len(settings)) + (k - (n_groups - 1) / 2) * width
        means = [mean_sd([m[lab] for m in members])[0] for lab, _, _ in settings]
        ax.bar(xs, means, width * 0.92, color=colors[(wd, bs)], edgecolor="0.3", linewidth=0.5,
               label=f"batch {bs}, WD={wd:g}")
        for j, (lab, _, _) in enumerate(settings):
            vals = [m[lab] for m in members]
            ax.plot(np.full(len(vals), xs[j]), vals, "o", ms=3.2, mfc="white", mec="0.15", mew=0.7, zorder=3)
    ax.set_xticks(np.arange(len(settings)), [lab for lab, _, _ in settings])
    ax.set_yscale("log")
    ax.set_ylabel(r"$\epsilon$-sharpness (Keskar et al., % of 1 + loss)")
    ax.grid(True, axis="y", color="0.9", lw=0.6, which="both")
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, frameon=False, ncol=len(groups), loc="lower left", bbox_to_anchor=(0.0, 1.0))
    ax.set_title("bars: mean over seeds; dots: one per seed", fontsize=8, color="0.35", loc="right")
    fig.suptitle(f"{s.model} on {s.dataset}: sharpness of small-batch ({s.small}) and large-batch ({s.large}) minima "
                 "(Keskar et al. 2016, Tables 2-4)", fontsize=11)
    return ctx.save(fig, "keskar_table")
