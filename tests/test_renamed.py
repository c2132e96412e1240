"""Old keyword names still work for one release, with a DeprecationWarning, and give the same numbers."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from landscape.errors import LandscapeError
from landscape.hessian import hutch_plus_plus, slq
from landscape.sharpness import pac_bayes_sigma

A = torch.diag(torch.arange(1.0, 9.0, dtype=torch.float64))


def test_old_keywords_warn_and_match_the_new_ones():
    with pytest.warns(DeprecationWarning, match=r"slq\(n_runs=...\) is deprecated; use n_probes="):
        old, _ = slq(lambda v: A @ v, 8, n_iter=4, n_runs=3, seed=1)
    new, _ = slq(lambda v: A @ v, 8, n_iter=4, n_probes=3, seed=1)
    np.testing.assert_array_equal(old.nodes, new.nodes)
    with pytest.warns(DeprecationWarning, match="use n_hvps="):
        est = hutch_plus_plus(lambda v: A @ v, 8, n_matvecs=9, seed=0)
    assert est.n_hvps == 9 and est.value == hutch_plus_plus(lambda v: A @ v, 8, n_hvps=9, seed=0).value
    with pytest.warns(DeprecationWarning, match="TraceEstimate.n_matvecs is deprecated"):
        assert est.n_matvecs == 9


def test_old_and_new_keyword_together_is_refused():
    with pytest.raises(LandscapeError, match=r"pass n_probes only \(n_runs is its old name\)"):
        slq(lambda v: A @ v, 8, n_iter=4, n_runs=3, n_probes=3)


def test_sharpness_draws_keyword():
    model = torch.nn.Linear(2, 2)
    data = (torch.randn(40, 2, generator=torch.Generator().manual_seed(0)), torch.arange(40) % 2)
    with pytest.warns(DeprecationWarning, match=r"pac_bayes_sigma\(n_samples=...\)"):
        old = pac_bayes_sigma(model, data, metric="loss", n_samples=2, tol=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        new = pac_bayes_sigma(model, data, metric="loss", n_probes=2, tol=0.2)
    assert old.value == new.value and new.settings["n_probes"] == 2


def test_cli_flags_take_the_new_name_and_the_old_one():
    from landscape.cli import build_parser

    parser = build_parser()
    for flag in ("--probes", "--mc-samples"):
        assert parser.parse_args(["sharpness", "--ckpt", "m.pt", flag, "3"]).mc_samples == 3
    for flag in ("--density-probes", "--density-runs"):
        assert parser.parse_args(["hessian", "--ckpt", "m.pt", flag, "4"]).density_runs == 4
