"""Scaling and recall benchmarks: output contract and exact flop counting (tiny, fast)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from spatial_ttt_ros.bench import recall, scaling
from spatial_ttt_ros.ttt import BackboneConfig, TTTBackbone


pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]  # trains small models: minutes


def _args(module, argv):
    p = argparse.ArgumentParser()
    module.configure_parser(p)
    return p.parse_args(argv)


@pytest.mark.parametrize("full", [False, True])
def test_memoised_flop_count_equals_counting_every_call(full):
    cfg = BackboneConfig(d_model=16, n_heads=2, n_layers=4, window_frames=2, chunk_frames=3, anchor_every=2,
                         grid_hw=(2, 2), tokens_per_frame=6, n_summary=4, full_context=full)
    m = TTTBackbone(cfg)
    total, per_layer = scaling.count_flops(m, cfg, 7, 2)
    assert total == scaling.count_flops_every_call(m, cfg, 7, 2)
    assert sum(per_layer.values()) == pytest.approx(total)
    assert total > 0


def test_meta_flops_match_cpu_flops_except_fused_attention():
    """The meta replay counts the same linear/conv/fast-weight flops as the real CPU run, plus
    the attention that the CPU's fused SDPA kernel hides from FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = BackboneConfig(d_model=16, n_heads=2, n_layers=2, window_frames=2, chunk_frames=2, anchor_every=0,
                         grid_hw=(2, 2), tokens_per_frame=6)
    m = TTTBackbone(cfg).requires_grad_(False)
    x = torch.randn(1, 4, 6, 16)
    counts = {}
    for dev in ("cpu", "meta"):
        mm = m.to(dev)
        fc = FlopCounterMode(display=False)
        with torch.no_grad(), fc:
            mm(x.to(dev))
        counts[dev] = {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}
    for op in ("aten.mm", "aten.addmm", "aten.convolution"):
        assert counts["cpu"].get(op) == counts["meta"].get(op), op
    assert counts["meta"]["aten.bmm"] > counts["cpu"].get("aten.bmm", 0)  # + attention


def test_scaling_bench_json_contract(tmp_path, capsys):
    out = tmp_path / "scaling.json"
    args = _args(scaling, ["--frames", "8", "24", "--json", str(out), "--in-process", "--d-model", "16",
                           "--n-heads", "2", "--n-layers", "2", "--anchor-every", "2", "--grid", "1", "2",
                           "--objects", "1", "--chunk-frames", "2", "--window-frames", "2", "--n-summary", "4",
                           "--min-timed-frames", "24", "--warmup-calls", "2"])
    assert scaling.run(args) == 0
    data = json.loads(out.read_text())
    assert set(data["methods"]) == {"ttt", "full_context", "sliding_window"}
    for method, rows in data["methods"].items():
        assert set(rows) == {"8", "24"}
        for r in rows.values():
            assert isinstance(r["state_bytes"], int) and isinstance(r["peak_rss_bytes"], int)
            assert r["ms_per_frame"] > 0 and r["flops"] > 0
    ttt, full = data["methods"]["ttt"], data["methods"]["full_context"]
    assert ttt["8"]["state_bytes"] == ttt["24"]["state_bytes"]
    assert full["24"]["state_bytes"] == 3 * full["8"]["state_bytes"]
    assert "anchor_flops_fraction" in ttt["24"]
    assert data["ratios"]["targets"]["ttt_state_24_over_8"]["pass"]
    assert "ttt" in capsys.readouterr().out


def test_recall_bench_runs_and_reports(tmp_path):
    """Contract only (a few steps cannot learn); the learning result is the benchmark's job."""
    out = tmp_path / "recall.json"
    args = _args(recall, ["--steps", "2", "--frames", "16", "20", "--train-frames", "12", "--train-frames-min", "10", "--train-frames-long", "14",
                          "--eval-streams", "8", "--batch", "4", "--d-model", "16", "--json", str(out)])
    assert recall.run(args) == 0
    data = json.loads(out.read_text())
    for name in ("ttt", "sliding_window"):
        r = data["methods"][name]
        assert 0.0 <= r["accuracy"] <= 1.0 and r["train_steps"] == 2
        assert r["eval_tokens_between_last_fact_and_query"] > r["window_tokens"]
        assert set(r["accuracy_by_eval_frames"]) == {"16", "20"}
    assert data["methods"]["ttt"]["config"]["ttt"] and not data["methods"]["sliding_window"]["config"]["ttt"]
