"""The shipped model's reference output, recorded for test/test_memory_model_shipped.py.

``python -m spatial_ttt_ros.training.reference record OUT.json`` writes what the
shipped checkpoint decodes and answers on ``training.data.synthetic_tokens``; the
test compares the model against it. ``... info [CKPT]`` prints a checkpoint's config
and training info.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from spatial_ttt_ros.answer import QuestionError
from spatial_ttt_ros.memory.checkpoint import DEFAULT_CHECKPOINT, load_default_model, load_model, read_checkpoint
from spatial_ttt_ros.memory.model import TTTMemory
from spatial_ttt_ros.reasoning.qa import answer_question
from spatial_ttt_ros.training.data import synthetic_tokens

REFERENCE_QUESTIONS = (
    ("How many chairs are in this room?", None),
    ("What is the size of this room (in square meters)?", None),
    ("What is the length of the longest dimension (length, width, or height) of the sofa, measured in centimeters?", None),
    ("What is the distance between the sofa and the tv (in meters)?", None),
)


def reference_output(model=None, n_frames: int = 48) -> dict:
    """The shipped model's output on ``data.synthetic_tokens(n_frames)``: raw slots, inventory, answers.

    Recorded into test/test_memory_model_shipped.json by
    ``python -m spatial_ttt_ros.training.reference record OUT.json`` and compared by the test.
    """
    model = model if model is not None else load_default_model()
    mem = TTTMemory(model)
    for t in synthetic_tokens(n_frames=n_frames):
        mem.observe(t)
    dec = mem.decoded()
    inv = mem.inventory()
    answers = []
    for q, opts in REFERENCE_QUESTIONS:
        try:
            a = answer_question(q, opts, inv)
            answers.append({"question": q, "value": None if np.isnan(a.value) else float(a.value), "option": a.option})
        except QuestionError as exc:
            answers.append({"question": q, "error": str(exc)})
    with torch.no_grad():
        p_obj = 1.0 - torch.softmax(dec.logits[0], -1)[:, -1]
    return {
        "n_frames": n_frames,
        "p_object": [round(float(v), 6) for v in p_obj],
        "center": [[round(float(v), 6) for v in row] for row in dec.center[0]],
        "room": [round(float(v), 6) for v in dec.room[0]],
        "inventory": inv.to_json(),
        "answers": answers,
    }


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spatial_ttt_ros.training.reference")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="record the shipped model's reference output (for the test)")
    r.add_argument("out")
    r.add_argument("--checkpoint", default=None)
    i = sub.add_parser("info", help="print a checkpoint's config and training info")
    i.add_argument("path", nargs="?", default=None)
    a = p.parse_args(argv if argv is not None else sys.argv[1:])
    if a.cmd == "record":
        model = load_model(a.checkpoint) if a.checkpoint else load_default_model()
        Path(a.out).write_text(json.dumps(reference_output(model), indent=1) + "\n")
        print(f"wrote {a.out}")
    else:
        config, _, info = read_checkpoint(a.path or DEFAULT_CHECKPOINT)
        print(json.dumps({"config": config, "info": info}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
