"""``spatial-ttt bench <name>``: benchmarks that print numbers and write JSON.

Each benchmark module exposes ``configure_parser(parser)`` and ``run(args) -> int``;
it is imported only when chosen.
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, tuple[str, str]] = {
    "scaling": ("spatial_ttt_ros.bench.scaling", "state bytes, memory, time and FLOPs against stream length"),
    "quality": ("spatial_ttt_ros.bench.quality", "VSI-Bench scores of the model, baselines and ablations"),
    "recall": ("spatial_ttt_ros.bench.recall", "synthetic long-range recall: TTT against sliding window"),
    "sim": ("spatial_ttt_ros.bench.sim_speed", "simulator frames per second"),
    "node": ("spatial_ttt_ros.ros.node_bench", "ROS node throughput, drops and service latency"),
    "soak": ("spatial_ttt_ros.ros.soak", "the node over a long run: RSS, threads, fds, drops, ask latency"),
}


def _unavailable(parser: argparse.ArgumentParser, reason: str):
    """A parse step that stops with the import error (in place of "unrecognized arguments")."""

    def fail(args=None, namespace=None):
        parser.error(f"this benchmark is unavailable: {reason}")

    return fail


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (module, help_text) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_bench_module=module)
        try:
            importlib.import_module(module).configure_parser(p)
        except ImportError as exc:  # a benchmark whose optional parts are missing still lists,
            p.parse_known_args = _unavailable(p, str(exc))  # and says why when it is chosen


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args._bench_module).run(args) or 0)
