"""The TTT core: fast-weight layers, spatial conv, sliding-window attention, hybrid blocks,
a constant-size streaming state and the backbone (plain PyTorch, no ROS)."""

from .backbone import BackboneConfig, TTTBackbone
from .state import StreamingState

__all__ = ["BackboneConfig", "TTTBackbone", "StreamingState"]
