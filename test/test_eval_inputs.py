"""Issue 14: evaluating a bag from elsewhere. A label numbering of its own is read through a
class-name file and scores as the default numbering does; a bag whose label images are on
another topic is said out loud (report, stderr) and ends non-zero unless --allow-empty;
the missing-topic error names the option that fixes it; eval --method and the node share
one method vocabulary and default."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from spatial_ttt_ros import topics
from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.cli import main as cli_main
from spatial_ttt_ros.sim.questions import generate_questions
from spatial_ttt_ros.sim.stream import simulate_stream
from test_eval_bag_reader import write_bag

N_FRAMES = 40
# Another simulator's numbering: background 0, our classes at 100, 101, ... in reverse order.
THEIR_ID = {name: 100 + i for i, name in enumerate(reversed(CLASSES))}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    stream = simulate_stream(seed=5, n_rooms=1, n_frames=N_FRAMES, rate_hz=10.0, width=160, height=120)
    frames = [f for f, _ in stream.frames()]
    records = generate_questions(stream.scene, stream.first_seen, seed=5, scene_name="s5", per_type=2)
    qa = d / "qa.json"
    qa.write_text(json.dumps(records))
    lut = np.zeros(len(CLASSES) + 1, np.uint16)
    for i, name in enumerate(CLASSES, start=1):
        lut[i] = THEIR_ID[name]
    theirs = [replace(f, labels=lut[f.labels]) for f in frames]
    return {
        "dir": d, "qa": qa, "frames": frames,
        "ours": write_bag(d / "ours", frames=frames),
        "theirs": write_bag(d / "theirs", frames=theirs),
    }


def _eval(out, bag, qa, *extra):
    return cli_main(["eval", "--bag", str(bag), "--qa", str(qa), "--out", str(out), "--method", "object_map",
                     "--no-progress", *extra])


def _report(out):
    return json.loads((out / "report.json").read_text())


def test_own_label_numbering_with_a_class_name_file_scores_as_the_default(case, tmp_path, capsys):
    assert _eval(tmp_path / "ours", case["ours"], case["qa"]) == 0
    ours = _report(tmp_path / "ours")
    assert ours["detections"] > 0 and ours["overall"] > 0

    # Without the table the bag's ids mean nothing here: a warning names them, the run exits 3.
    capsys.readouterr()
    assert _eval(tmp_path / "bare", case["theirs"], case["qa"]) == 3
    err = capsys.readouterr().err
    assert "not named by the class-name table" in err and "--class-names" in err and "--allow-empty" in err

    names_json = tmp_path / "names.json"
    names_json.write_text(json.dumps({str(v): k for k, v in THEIR_ID.items()}))
    names_txt = tmp_path / "names.txt"  # one name a line from id 1: ids 1..99 unused ("-")
    names_txt.write_text("\n".join(["-"] * 99 + [n for n, _ in sorted(THEIR_ID.items(), key=lambda kv: kv[1])]) + "\n")
    for names in (names_json, names_txt):
        out = tmp_path / names.suffix[1:]
        assert _eval(out, case["theirs"], case["qa"], "--class-names", str(names)) == 0
        theirs = _report(out)
        assert theirs["overall"] == pytest.approx(ours["overall"])
        assert theirs["tasks"] == pytest.approx(ours["tasks"])
        assert not theirs["warnings"]
        assert set(theirs["label_ids_seen"]) - {0} <= set(THEIR_ID.values())


def test_labels_on_another_topic_warn_and_exit_non_zero(case, tmp_path, monkeypatch, capsys):
    # write_bag puts labels on topics.LABELS: move them where another simulator would
    monkeypatch.setattr(topics, "LABELS", "/sim/semantic_labels")
    bag = write_bag(tmp_path / "bag", frames=case["frames"][:10])
    monkeypatch.undo()
    capsys.readouterr()
    assert _eval(tmp_path / "a", bag, case["qa"]) == 3
    err = capsys.readouterr().err
    assert "labels: MISSING" in err and "--labels-topic" in err and "/sim/semantic_labels" in err
    assert "no detections at all" in err
    md = (tmp_path / "a" / "report.md").read_text()
    assert "**Warning:** no detections at all" in md and "labels: MISSING" in md

    assert _eval(tmp_path / "b", bag, case["qa"], "--allow-empty") == 0
    assert _eval(tmp_path / "c", bag, case["qa"], "--labels-topic", "/sim/semantic_labels") == 0
    rep = _report(tmp_path / "c")
    assert rep["detections"] > 0 and not rep["warnings"]
    assert any(i.startswith("labels: /sim/semantic_labels") for i in rep["inputs"])
    # one page with every plot inline, the bird's-eye map among them
    html = (tmp_path / "c" / "report.html").read_text()
    assert html.count("src='data:image/png;base64,") == 4 and (tmp_path / "c" / "map.png").is_file()


def test_missing_depth_error_names_the_option(case, tmp_path, capsys):
    bag = write_bag(tmp_path / "bag", n=3, depth="none")
    capsys.readouterr()
    assert _eval(tmp_path / "out", bag, case["qa"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "lacks the topics needed" in last and "--depth-topic" in last and "Topics present:" in last


def test_method_vocabulary_is_shared():
    from spatial_ttt_ros.evaluation.cli import configure_parser
    from spatial_ttt_ros.evaluation.replay import EvalConfig
    from spatial_ttt_ros.memory.methods import DEFAULT_METHOD, METHODS
    from spatial_ttt_ros.ros.params import SPECS
    import argparse

    p = argparse.ArgumentParser()
    configure_parser(p)
    action = next(a for a in p._actions if a.dest == "method")
    assert tuple(action.choices) == METHODS and action.default == DEFAULT_METHOD
    assert all(m in action.help for m in METHODS)
    assert SPECS["method"].default == DEFAULT_METHOD and tuple(SPECS["method"].choices) == METHODS
    assert EvalConfig(bag=None, qa=None, out=None).method == DEFAULT_METHOD
    with pytest.raises(SystemExit):
        p.parse_args(["--bag", "b", "--qa", "q", "--out", "o", "--method", "swa"])
