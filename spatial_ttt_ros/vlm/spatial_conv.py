"""Depthwise 3x3x3 conv over the (time, h, w) grid of one frame's video tokens.

The released layers hold `conv_q`, `conv_k`, `conv_v`: Conv3d(C, C, 3, groups=C,
padding=1, padding_mode="replicate", bias=False) applied to the TTT branch's Q, K
and V (not to the attention branch's). The official streaming prefill looks one
frame ahead at chunk ends; a robot cannot, so here the conv is causal in time:
frame t sees (t-1, t, t) -- the future frame is the replicate padding the official
code uses at the last frame of a video. The same rule in a one-shot prefill and in
a stream makes the two identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_frame_conv(
    frame: torch.Tensor,  # [h*w, C] raw (pre-conv) tokens of the newest frame, row-major
    previous: torch.Tensor | None,  # [h*w, C] raw tokens of the frame before, or None
    weight: torch.Tensor,  # [C, 1, 3, 3, 3] depthwise kernel
    h: int,
    w: int,
) -> torch.Tensor:
    """-> [h*w, C] conv output of the newest frame."""
    prev = frame if previous is None or previous.shape != frame.shape else previous
    x = torch.stack([prev, frame, frame], dim=0)  # [3, h*w, C]
    x = x.reshape(3, h, w, -1).permute(3, 0, 1, 2).unsqueeze(0)  # [1, C, 3, h, w]
    x = F.pad(x, (1, 1, 1, 1, 0, 0), mode="replicate")  # [1, C, 3, h+2, w+2]
    y = F.conv3d(x, weight.to(x.dtype), groups=x.shape[1])  # [1, C, 1, h, w]
    return y[0, :, 0].permute(1, 2, 0).reshape(h * w, -1)
