"""Smoke test of ``spatial-ttt bench quality`` on a tiny stream (object map only: no checkpoint needed)."""

from __future__ import annotations

import argparse
import json

import pytest

from spatial_ttt_ros.bench import quality


def test_rooms_scale_with_frames_and_the_splits_never_meet_training():
    from spatial_ttt_ros.training.learned_data import SPENT_HELD_OUT_SEEDS, VAL_SEEDS

    assert [quality.rooms_for_frames(f) for f in (300, 1000, 5000)] == [1, 2, 4]
    val, held = quality.split_seeds("validation"), quality.split_seeds("held_out")
    spent = [s for split in SPENT_HELD_OUT_SEEDS for s in quality.split_seeds(split)]
    assert len(val) >= 8 and len(held) >= 8 and not set(val) & set(held)
    assert not set(held) & set(spent)  # v8b's held-out set was not run before

    assert min(val + held + spent) >= VAL_SEEDS.start  # training streams are the seeds below
    with pytest.raises(ValueError, match="split"):
        quality.split_seeds("test")


def test_bootstrap_interval_brackets_the_pooled_score():
    rec = lambda i, s: ({"id": i, "scene_name": s, "question_type": "object_counting", "question": f"How many chair{i}?",  # noqa: E731
                         "options": [], "ground_truth": 2}, 1.0 if s == "a" else 0.0)
    per_scene = [[rec(i, "a") for i in range(4)], [rec(i, "b") for i in range(4)], [rec(i, "c") for i in range(4)]]
    lo, hi = quality.bootstrap_ci(per_scene, n=200)
    pooled = quality._aggregate([x for sc in per_scene for x in sc])["overall"]
    assert lo <= pooled <= hi and lo < hi


def test_bench_quality_writes_the_documented_json(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    quality.configure_parser(parser)
    out = tmp_path / "q.json"
    args = parser.parse_args(
        ["--json", str(out), "--frames", "60", "--scenes", "1", "--methods", "object_map", "--ablations",
         "--per-type", "2"]
    )
    assert quality.run(args) == 0
    doc = json.loads(out.read_text())
    assert {r["detections"] for r in doc["results"]} == {"exact", "noisy"}
    for r in doc["results"]:
        assert r["method"] == "object_map" and r["frames"] == 60
        assert 0.0 <= r["overall"] <= 100.0
        assert r["tasks"] and all(0.0 <= v <= 100.0 for v in r["tasks"].values())
        assert r["state_bytes"] > 0
    exact = next(r for r in doc["results"] if r["detections"] == "exact")
    # Exact label-image detections of a single room: the map counts what it saw.
    assert exact["tasks"]["object_counting"] >= 75.0
    assert doc["ablations"] == []
    assert "object_map" in capsys.readouterr().out


def test_bench_quality_rejects_bad_arguments():
    parser = argparse.ArgumentParser()
    quality.configure_parser(parser)
    with pytest.raises(ValueError, match="--scenes"):
        quality.run(parser.parse_args(["--scenes", "0", "--methods", "object_map", "--ablations"]))
    with pytest.raises(ValueError, match="unknown memory method"):
        quality.run(parser.parse_args(["--frames", "20", "--methods", "lstm", "--ablations"]))


def test_bench_quality_runs_learned_methods_beside_the_object_map(tmp_path):
    """The shipped checkpoint: methods and ablations scored on the same tokens, with intervals."""
    parser = argparse.ArgumentParser()
    quality.configure_parser(parser)
    out = tmp_path / "q.json"
    args = parser.parse_args(
        ["--json", str(out), "--frames", "40", "--scenes", "2", "--detections", "exact", "--per-type", "1",
         "--methods", "ttt", "object_map", "--ablations", "ttt_const_lr"]
    )
    assert quality.run(args) == 0
    doc = json.loads(out.read_text())
    assert [r["method"] for r in doc["results"]] == ["ttt", "object_map"]
    assert [a["name"] for a in doc["ablations"]] == ["ttt_const_lr"]
    assert doc["skipped"] == [] and doc["config"]["split"] == "validation"
    for r in doc["results"] + doc["ablations"]:
        lo, hi = r["ci95"]
        assert lo <= r["overall"] <= hi and r["scenes"] == 2
