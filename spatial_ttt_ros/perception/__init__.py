"""Perception front-end: camera frame -> world observations -> frame tokens.

- ``detector``: ``OnnxDetector`` (YOLOX-layout ONNX model via onnxruntime) -> 2D ``Detection``s.
- ``label_image``: label / instance images -> ``Detection``s with masks.
- ``lifting``: depth + intrinsics + pose -> world ``ObjectObservation``s.
- ``tokens``: ``Tokenizer`` -> ``FrameTokens`` (ego, geometry grid, object slots).
- ``noise``: ``DetectorNoise`` presets and ``NoiseSession`` (detector errors, pose drift).

Modules are imported explicitly (``from spatial_ttt_ros.perception.tokens import ...``)
so that onnxruntime is loaded only by code that runs a detector.
"""
