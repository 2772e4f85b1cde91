"""``spatial-ttt bench recall``: does the fast-weight memory remember past the attention window?

Synthetic recall stream (no scenes, no geometry: a pure memory test of the TTT core):

* frames of ``1 + gh*gw + 1`` tokens; every token is random noise (a distractor) except
  that each of the first ``n_facts`` frames carries one *fact* on its object-slot
  token: embedding(key) + embedding(value) + a "fact" type embedding;
* after ``frames`` frames (thousands of tokens, far beyond the sliding window of
  ``window_frames`` frames), each fact's key is asked through ``TTTBackbone.read``
  (query token = embedding(key) + a "query" type embedding), and a linear head must
  name the value (chance = 1 / n_values).

Two models of the same width and depth, trained the same way (outer loop through the
inner updates, AdamW): the TTT backbone and its sliding-window-only twin (ttt=False).
No anchor layers (their chunk summary would be a second long-range path; the point
is the fast weights). Training streams are shorter than the evaluation streams
(a curriculum up to ``train_frames_long``) and the evaluation is on fresh streams of
each ``--frames`` length: the model must have learnt to write facts and to
protect them from the distractors' updates (with its per-token learning rate),
not the length of one stream.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from spatial_ttt_ros.bench.results import write_json
from spatial_ttt_ros.ttt import BackboneConfig, TTTBackbone


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 300, 600, 1000],
                        help="evaluation stream lengths in frames (the headline is the longest)")
    parser.add_argument("--train-frames", type=int, default=24, help="longest training stream, first phase")
    parser.add_argument("--train-frames-long", type=int, default=400,
                        help="longest training stream at the end of the curriculum")
    parser.add_argument("--train-frames-min", type=int, default=12)
    parser.add_argument("--n-facts", type=int, default=8)
    parser.add_argument("--n-keys", type=int, default=64)
    parser.add_argument("--n-values", type=int, default=16)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--n-layers", type=int, default=1)
    parser.add_argument("--grid", type=int, nargs=2, default=[1, 1], metavar=("H", "W"))
    parser.add_argument("--window-frames", type=int, default=2)
    parser.add_argument("--chunk-frames", type=int, default=4)
    parser.add_argument("--ttt-lr-scale", type=float, default=10.0, help="eta = scale * softplus(.), 1e-3 at init")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1200, help="max optimiser steps per model")
    parser.add_argument("--minutes", type=float, default=9.0, help="training time limit per model")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--eval-streams", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: best on a shared CPU; 0: torch default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)


class RecallModel(nn.Module):
    """Embeddings -> TTTBackbone -> read(keys) -> value logits."""

    def __init__(self, cfg: BackboneConfig, n_keys: int, n_values: int):
        super().__init__()
        d = cfg.d_model
        self.backbone = TTTBackbone(cfg)
        self.key_emb = nn.Embedding(n_keys, d)
        self.val_emb = nn.Embedding(n_values, d)
        self.type_emb = nn.Embedding(3, d)  # 0 distractor, 1 fact, 2 query
        self.head = nn.Linear(d, n_values)

    def forward(self, noise: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """noise [B, F, T, D]; keys, values [B, n_facts] -> logits [B, n_facts, n_values]."""
        b, f, t, d = noise.shape
        n = keys.shape[1]
        x = noise + self.type_emb.weight[0]
        fact = self.key_emb(keys) + self.val_emb(values) + self.type_emb.weight[1]  # [B,n,D]
        # fact i sits on the last (object-slot) token of frame i; built without in-place ops
        slot = torch.zeros(f, t, 1)
        slot[:n, t - 1] = 1.0
        fact_full = F.pad(fact, (0, 0, 0, f - n)).unsqueeze(2)  # [B,F,1,D]
        x = x * (1 - slot) + fact_full * slot
        _, state = self.backbone(x, None, None)
        q = self.key_emb(keys) + self.type_emb.weight[2]
        return self.head(self.backbone.read(state, q))


def sample(batch: int, frames: int, cfg: BackboneConfig, n_facts: int, n_keys: int, n_values: int, g: torch.Generator):
    noise = torch.randn(batch, frames, cfg.tokens_per_frame, cfg.d_model, generator=g)
    keys = torch.rand(batch, n_keys, generator=g).argsort(dim=1)[:, :n_facts]  # distinct keys per stream
    values = torch.randint(n_values, (batch, n_facts), generator=g)
    return noise, keys, values


def build_config(args, ttt: bool) -> BackboneConfig:
    gh, gw = args.grid
    return BackboneConfig(
        d_model=args.d_model, n_heads=args.n_heads, n_layers=args.n_layers, window_frames=args.window_frames,
        chunk_frames=args.chunk_frames, anchor_every=0, grid_hw=(gh, gw), tokens_per_frame=1 + gh * gw + 1,
        ttt=ttt, ttt_lr_scale=args.ttt_lr_scale,
    )


def train_and_eval(args, ttt: bool, log=print) -> dict:
    torch.manual_seed(args.seed)
    cfg = build_config(args, ttt)
    model = RecallModel(cfg, args.n_keys, args.n_values)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(args.seed + 1)
    t0 = time.time()
    step, losses, accs = 0, [], []
    while step < args.steps and time.time() - t0 < 60 * args.minutes:
        # Curriculum: short streams until the association is learnt (40% of the steps), then the
        # longest length grows to train_frames_long, lengths drawn log-uniformly, so the model
        # must learn to protect the facts from ever more distractor updates.
        frac = max(0.0, (step / max(1, args.steps) - 0.4) / 0.6)
        longest = args.train_frames + frac * (args.train_frames_long - args.train_frames)
        u = float(torch.rand((), generator=g))
        frames = int(round(math.exp(math.log(args.train_frames_min) + u * math.log(longest / args.train_frames_min))))
        noise, keys, values = sample(args.batch, frames, cfg, args.n_facts, args.n_keys, args.n_values, g)
        logits = model(noise, keys, values)
        loss = F.cross_entropy(logits.reshape(-1, args.n_values), values.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:  # short warm-up, then constant
            group["lr"] = args.lr * min(1.0, (step + 1) / 20)
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        accs.append(float((logits.argmax(-1) == values).float().mean()))
        if step % 25 == 0:
            log(f"  [{'ttt' if ttt else 'swa'}] step {step:4d} loss {sum(losses[-25:]) / 25:.3f} "
                f"acc {sum(accs[-25:]) / 25:.3f} ({time.time() - t0:.0f} s)")
    train_s = time.time() - t0
    model.eval()
    ge = torch.Generator().manual_seed(10_000 + args.seed)
    by_frames = {}
    with torch.no_grad():
        for frames in sorted(args.frames):
            correct = total = 0
            for start in range(0, args.eval_streams, args.batch):
                b = min(args.batch, args.eval_streams - start)
                noise, keys, values = sample(b, frames, cfg, args.n_facts, args.n_keys, args.n_values, ge)
                correct += int((model(noise, keys, values).argmax(-1) == values).sum())
                total += values.numel()
            by_frames[str(frames)] = {
                "accuracy": correct / total,
                "tokens_between_last_fact_and_query": (frames - args.n_facts) * cfg.tokens_per_frame,
            }
    longest = str(max(args.frames))
    return {
        "accuracy": by_frames[longest]["accuracy"],
        "accuracy_by_eval_frames": by_frames,
        "chance": 1.0 / args.n_values,
        "eval_frames": int(longest),
        "eval_tokens_between_last_fact_and_query": by_frames[longest]["tokens_between_last_fact_and_query"],
        "window_tokens": cfg.window_frames * cfg.tokens_per_frame,
        "train_steps": step,
        "train_seconds": train_s,
        "final_train_loss": sum(losses[-25:]) / max(1, len(losses[-25:])),
        "config": cfg.to_dict(),
    }


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_frames_min < args.n_facts + 1 or args.train_frames < args.train_frames_min:
        raise ValueError("need n_facts < train_frames_min <= train_frames")
    if min(args.frames) <= args.n_facts:
        raise ValueError("--frames must exceed --n-facts")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    results = {name: train_and_eval(args, ttt, log) for name, ttt in (("ttt", True), ("sliding_window", False))}
    chance = 1.0 / args.n_values
    print(f"recall after {results['ttt']['eval_tokens_between_last_fact_and_query']} tokens "
          f"(window {results['ttt']['window_tokens']} tokens), chance {chance:.3f}")
    for name, r in results.items():
        z = (r["accuracy"] - chance) / math.sqrt(chance * (1 - chance) / (args.eval_streams * args.n_facts))
        r["z_vs_chance"] = z
        by = ", ".join(f"{f} frames {v['accuracy']:.3f}" for f, v in r["accuracy_by_eval_frames"].items())
        print(f"  {name:<15} accuracy {r['accuracy']:.3f}  ({r['train_steps']} steps, {r['train_seconds']:.0f} s, "
              f"z vs chance {z:+.1f}; {by})")
    if args.json:
        write_json(args.json, {"methods": results, "chance": chance})
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="spatial-ttt bench recall", description=__doc__.splitlines()[0])
    configure_parser(p)
    sys.exit(run(p.parse_args()))
