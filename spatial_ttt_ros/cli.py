"""The ``spatial-ttt`` command: one entry point, one subcommand per capability.

Each subcommand lives in the folder named for its capability and exposes
``configure_parser(parser)`` and ``run(args) -> int``; modules are imported only
when their subcommand runs, so ``spatial-ttt sim`` never loads rclpy and
``spatial-ttt node`` never loads the simulator.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("spatial_ttt_ros.sim.cli", "generate a simulated multi-room stream as a rosbag2 with questions"),
    "convert": ("spatial_ttt_ros.sim.rgbd_convert", "turn an RGB-D folder (rgb/, depth/, K.txt, poses.txt) into a bag"),
    "train": ("spatial_ttt_ros.training.learned_train", "train the learned TTT map on cached simulated streams"),
    "eval": ("spatial_ttt_ros.evaluation.cli", "score a model on a bag and a question file (offline or --live)"),
    "bench": ("spatial_ttt_ros.bench.cli", "benchmarks: scaling, quality, sim, node"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``selected`` subcommand's module is imported to fill in its options."""
    parser = argparse.ArgumentParser(prog="spatial-ttt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("node", help="start the ROS 2 node (accepts --ros-args ...)", add_help=False)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == selected:
            importlib.import_module(module).configure_parser(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "node":
        # rclpy parses its own --ros-args; hand the rest over untouched.
        from spatial_ttt_ros.ros.node import main as node_main

        return node_main(argv[1:])
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        # Bad input is the user's to fix: one line, non-zero exit, no traceback.
        print(f"spatial-ttt {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
