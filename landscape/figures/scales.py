"""The two settings every figure recipe runs at: ``demo`` (built-in data, 2 CPU cores) and ``paper``.

One `Scale` holds everything a recipe needs to know, so a recipe is the same code at both scales
and the only difference between a 15-minute CPU run and a multi-GPU reproduction is this table.

``paper`` is the published setting: Li et al. (2018, section 5) train VGG-9 on CIFAR-10 for 300
epochs with SGD (momentum 0.9, lr 0.1 divided by 10 at epochs 150 and 225), batch 128 against
8192 (16% of the training set), weight decay 0 and 5e-4; Keskar et al. (2016) measure
epsilon-sharpness with eps 1e-3 and 5e-4, in the full space and a random 100-dimensional
subspace, with 10 L-BFGS-B iterations. (Li et al. decay a third time at epoch 275; a sweep's step
schedule has the two decays, the 25 epochs at lr 1e-4 are the only difference.) Those models are
shared by every recipe, as the demo's are. The steps-to-result study (Shallue et al. 2018)
trains the same network with constant-lr SGD tuned over a log grid of learning rates at each
batch size for a fixed step budget, to a test error of 20% (our choice of target: reachable by
every batch size within the budget).

``demo`` keeps every figure's design on sklearn's digits with a one-hidden-layer MLP, which trains
in seconds on one CPU thread: batch 32 against 1024 (71% of the 1,437 training images), 100
epochs at a constant learning rate (the step decay left the large batch short of fitting the
training set), and a steps-to-result grid that reaches a 3.5% test error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..errors import LandscapeError


@dataclass(frozen=True)
class StudySettings:
    """The batch-size x weight-decay study whose models Li Fig. 3, the interpolation, Keskar's table,
    the Hessian figure and the trajectories all look at."""

    model: str
    dataset: str
    batch_sizes: Sequence[int]
    small: int
    large: int
    weight_decays: Sequence[float] = (0.0, 5e-4)
    seeds: Sequence[int] = (0, 1, 2)
    lr: float = 0.1
    momentum: float = 0.9
    epochs: float = 100
    schedule: str = "constant"
    snapshot_every: int | None = 5
    model_args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ScalingSettings:
    """The steps-to-result grid (Shallue et al.; Golmant et al.): batch sizes x tuned learning rates."""

    model: str
    dataset: str
    batch_sizes: Sequence[int]
    lrs: Sequence[float]
    seeds: Sequence[int]
    steps: int
    target_error: float
    eval_every: int
    momentum: float = 0.9
    schedule: str = "constant"
    model_args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrackingSettings:
    """Runs measured in the loop (`landscape.track`): lambda_max against 2/lr, and B_simple against the
    critical batch size of the steps-to-result grid (same model, data, momentum and target)."""

    batch_sizes: Sequence[int]
    lr: float
    steps: int
    track_every: int
    seeds: Sequence[int] = (0, 1, 2)
    samples: int | None = 1024  # training samples each measurement uses
    n_probes: int = 30
    # With tuned_lrs ({batch size: lr}) the critical batch size is measured on runs at those learning rates
    # only, for these seeds, stopped at the target: a lean steps-to-result at known-good learning rates.
    # Without, it is read off the full steps-to-result grid (``Scale.scaling``).
    tuned_lrs: Mapping[int, float] | None = None


@dataclass(frozen=True)
class Scale:
    """Everything that differs between a demo and a paper-scale run of the figures."""

    name: str
    study: StudySettings
    scaling: ScalingSettings
    line_points: int = 51            # 1D filter-normalized curves on [-1, 1]
    plane_points: int = 31           # 2D contours on [-1, 1]^2
    interpolation_points: int = 61   # alpha in [-1, 2]; [-0.5, 1.5] is drawn from the same points
    trajectory_points: int = 31
    surface_samples: int | None = None  # a fixed random subset per split, or every sample
    keskar_eps: Sequence[float] = (1e-3, 5e-4)
    keskar_subspace: int = 100
    keskar_max_iter: int = 10
    measure_samples: int | None = None  # training samples the sharpness and Hessian measures use
    lanczos_tol: float = 1e-3
    density_iter: int = 80
    density_runs: int = 4
    threads: int | None = None  # torch threads; 1 for small models, where threading only adds overhead
    tracking: TrackingSettings | None = None


DEMO = Scale(
    name="demo",
    study=StudySettings(model="mlp", dataset="digits", model_args={"hidden": [64]},
                        batch_sizes=(32, 64, 128, 256, 512, 1024), small=32, large=1024,
                        seeds=(0, 1, 2), lr=0.1, epochs=100, schedule="constant", snapshot_every=5),
    scaling=ScalingSettings(model="mlp", dataset="digits", model_args={"hidden": [64]},
                            batch_sizes=(8, 16, 32, 64, 128, 256, 512, 1024), lrs=(0.01, 0.03, 0.1, 0.3, 1.0),
                            seeds=(0, 1), steps=500, target_error=0.035, eval_every=2),
    threads=1,
    # tuned_lrs: the best learning rate per batch size of the steps-to-result grid above (figures_demo.json)
    tracking=TrackingSettings(batch_sizes=(16, 128, 1024), lr=0.1, steps=300, track_every=20, samples=512,
                              tuned_lrs={8: 0.01, 16: 0.03, 32: 0.03, 64: 0.1, 128: 0.3, 256: 0.3, 512: 0.3,
                                         1024: 0.3}),
)

PAPER = Scale(
    name="paper",
    study=StudySettings(model="vgg9", dataset="cifar10", batch_sizes=(128, 256, 512, 1024, 2048, 4096, 8192),
                        small=128, large=8192, seeds=(0,), lr=0.1, epochs=300, schedule="step",
                        snapshot_every=10),
    scaling=ScalingSettings(model="vgg9", dataset="cifar10",
                            batch_sizes=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192),
                            lrs=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0), seeds=(0,), steps=20000, target_error=0.2,
                            eval_every=50),
    line_points=51, plane_points=51, interpolation_points=61, trajectory_points=51,
    measure_samples=5000, lanczos_tol=1e-3, density_iter=90, density_runs=10,
    tracking=TrackingSettings(batch_sizes=(128, 1024, 8192), lr=0.1, steps=20000, track_every=500, seeds=(0,),
                              samples=2048),
)

SCALES = {s.name: s for s in (DEMO, PAPER)}


def get_scale(name: str | Scale) -> Scale:
    if isinstance(name, Scale):
        return name
    try:
        return SCALES[name]
    except KeyError:
        raise LandscapeError(f"unknown scale {name!r}; use one of {', '.join(SCALES)}") from None
