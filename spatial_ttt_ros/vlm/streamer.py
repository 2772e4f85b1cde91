"""VLMStream: keyframes in as they arrive, questions answered from a snapshot.

Prompt layout (Qwen3-VL chat format, one user turn that grows with the video):

  <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n       (prefilled at reset)
  <{t:.1f} seconds><|vision_start|><|video_pad|> x h*w<|vision_end|> (one per keyframe)
  {question}{options}{instruction}<|im_end|>\\n<|im_start|>assistant\\n (per question, on a fork)

A question never touches the stream's state: it prefills and decodes on
`state.fork()`, which shares tensors that are never modified in place.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from .engine import SpatialTTTEngine, build_batch
from .state import StreamState
from .vision import frame_to_patches

OPTION_LETTERS = "ABCDEFGH"
MC_INSTRUCTION = "\nAnswer with the option's letter from the given choices directly."
NUMERIC_INSTRUCTION = "\nPlease answer the question using a single word or phrase."


@dataclass
class Generation:
    text: str
    token_probs: list[float] = field(default_factory=list)  # probability of each generated token
    option_probs: dict[str, float] = field(default_factory=dict)  # letter -> prob at the first step

    @property
    def confidence(self) -> float:
        if not self.token_probs:
            return 0.0
        return float(math.exp(sum(math.log(max(p, 1e-12)) for p in self.token_probs) / len(self.token_probs)))


class VLMStream:
    def __init__(
        self,
        engine: SpatialTTTEngine,
        tokenizer,
        keyframe_interval_s: float = 1.0,
        frame_size: tuple[int, int] = (352, 480),
        system_prompt: str = "You are a helpful assistant.",
        max_new_tokens: int = 24,
    ):
        self.engine = engine
        self.tok = tokenizer
        self.keyframe_interval_s = float(keyframe_interval_s)
        self.frame_size = frame_size
        self.system_prompt = system_prompt
        self.max_new_tokens = int(max_new_tokens)
        vc = engine.model.config.vision_config
        self.patch, self.merge, self.temporal = vc.patch_size, vc.spatial_merge_size, vc.temporal_patch_size
        self._lock = threading.Lock()
        self.stop_ids = {i for i in (self._token_id("<|im_end|>"), tokenizer.eos_token_id) if i is not None}
        self.reset()

    def _token_id(self, token: str) -> int | None:
        i = self.tok.convert_tokens_to_ids(token)
        return None if i is None or i == self.tok.unk_token_id else int(i)

    def _ids(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    # -- stream ---------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.t0: float | None = None
            self.last_keyframe: float | None = None
            prefix = f"<|im_start|>system\n{self.system_prompt}<|im_end|>\n<|im_start|>user\n"
            state = self.engine.new_state()
            batch = build_batch([self._ids(prefix)], state.next_position, self.engine.video_token_id)
            _, self.state = self.engine.prefill(state, batch)

    def offer_frame(self, rgb: np.ndarray, stamp: float) -> bool:
        """Prefill the frame if it is due as a keyframe; True when it was taken."""
        if self.last_keyframe is not None and stamp - self.last_keyframe < self.keyframe_interval_s:
            return False
        self.add_frame(rgb, stamp)
        return True

    def frame_segments(self, rgb: np.ndarray, stamp: float) -> list:
        if self.t0 is None:
            self.t0 = stamp
        pv, grid = frame_to_patches(rgb, *self.frame_size, self.patch, self.merge, self.temporal)
        frame = self.engine.encode_frame(torch.from_numpy(pv), grid)
        head = self._ids(f"<{stamp - self.t0:.1f} seconds>") + [self._token_id("<|vision_start|>")]
        return [head, frame, [self._token_id("<|vision_end|>")]]

    def add_frame(self, rgb: np.ndarray, stamp: float) -> None:
        with self._lock:
            segments = self.frame_segments(rgb, stamp)
            batch = build_batch(segments, self.state.next_position, self.engine.video_token_id)
            _, self.state = self.engine.prefill(self.state, batch)
            self.last_keyframe = stamp

    def state_bytes(self) -> int:
        return self.state.nbytes()

    # -- questions ------------------------------------------------------------------
    def question_prompt(self, question: str, options: list[str] | None) -> str:
        text = question.strip()
        if options:
            text += "\nOptions:\n" + "\n".join(options) + MC_INSTRUCTION
        else:
            text += NUMERIC_INSTRUCTION
        return text + "<|im_end|>\n<|im_start|>assistant\n"

    @torch.no_grad()
    def ask(self, question: str, options: list[str] | None = None) -> Generation:
        with self._lock:
            state: StreamState = self.state.fork()
        ids = self._ids(self.question_prompt(question, options))
        logits, state = self.engine.prefill(
            state, build_batch([ids], state.next_position, self.engine.video_token_id)
        )
        option_probs = {}
        if options:
            probs = torch.softmax(logits, dim=-1)
            for letter in OPTION_LETTERS[: len(options)]:
                tid = self._ids(letter)
                if len(tid) == 1:
                    option_probs[letter] = float(probs[tid[0]])
        out_ids, token_probs = [], []
        for _ in range(self.max_new_tokens):
            probs = torch.softmax(logits, dim=-1)
            nxt = int(torch.argmax(probs))
            if nxt in self.stop_ids:
                break
            out_ids.append(nxt)
            token_probs.append(float(probs[nxt]))
            logits, state = self.engine.prefill(
                state, build_batch([[nxt]], state.next_position, self.engine.video_token_id)
            )
        text = self.tok.decode(out_ids, skip_special_tokens=True)
        return Generation(text=text.strip(), token_probs=token_probs, option_probs=option_probs)
