"""`landscape bench --data-on stream` on a tiny generated file: it measures, checks and cleans up."""
from __future__ import annotations

import argparse

from landscape.bench import stream


def test_stream_bench_measures_and_deletes_its_files(tmp_path):
    args = argparse.Namespace(stream_gib=0.001, stream_fit_gib=0.0005, stream_dir=str(tmp_path), samples=32, repeat=3)
    r = stream.run(args)  # asserts streaming == resident values before timing
    assert r["big_samples"] == 88 and r["eig_hvps"] == 3 and len(r["ratios"]) == 3
    assert r["peak_rss_mib"] >= r["rss_before_mib"] > 0 and r["surface_points"] == 2
    assert list(tmp_path.iterdir()) == []  # nothing left on disk
