"""Smoke test of ``spatial-ttt bench quality`` on a tiny stream (object map only: no checkpoint needed)."""

from __future__ import annotations

import argparse
import json

import pytest

from spatial_ttt_ros.bench import quality


def test_rooms_scale_with_frames_and_seeds_are_held_out():
    assert [quality.rooms_for_frames(f) for f in (300, 1000, 5000)] == [1, 2, 4]
    seeds = quality.held_out_seeds()
    assert len(seeds) >= 3
    from spatial_ttt_ros.training.data import HELD_OUT_SEEDS

    assert set(seeds) <= set(HELD_OUT_SEEDS)  # never a training seed


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


def test_bench_quality_runs_learned_variants_beside_the_object_map(tmp_path):
    """With a checkpoint (here an untrained one) every method and ablation is scored on the same tokens."""
    torch = pytest.importorskip("torch")
    from spatial_ttt_ros.memory.checkpoint import save_checkpoint
    from spatial_ttt_ros.memory.model import SpatialMemoryModel

    torch.manual_seed(0)
    model = SpatialMemoryModel()
    ckpt = save_checkpoint(tmp_path / "untrained.safetensors", model.cfg.to_dict(), model.state_dict())
    parser = argparse.ArgumentParser()
    quality.configure_parser(parser)
    out = tmp_path / "q.json"
    args = parser.parse_args(
        ["--json", str(out), "--frames", "24", "--scenes", "1", "--detections", "exact", "--per-type", "1",
         "--checkpoint", str(ckpt), "--methods", "ttt", "object_map", "--ablations", "ttt_frozen"]
    )
    assert quality.run(args) == 0
    doc = json.loads(out.read_text())
    assert [r["method"] for r in doc["results"]] == ["ttt", "object_map"]
    assert [a["name"] for a in doc["ablations"]] == ["ttt_frozen"]
    assert doc["skipped"] == []
