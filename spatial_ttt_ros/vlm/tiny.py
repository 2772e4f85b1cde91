"""A tiny randomly initialised Spatial-TTT of the released architecture (tests, CPU).

Same classes, names and layer layout rules as the release -- LaCT layers 0, 1, 2
and an anchor at 3, shared Q/K/V, conv, momentum, deepstack -- at toy sizes:
hidden 64, 4 layers, a 2-block vision tower with 4-pixel patches, a byte-level
tokenizer built locally with `tokenizers`. Everything is written with
save_pretrained and read back through loader.load_model: no network.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import SpatialTTTConfig
from .loader import build_model, save_checkpoint

SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|image_pad|>"]
TINY_FRAME = (16, 16)  # pixels: 4x4 patches of 4 px -> 2x2 merged tokens per keyframe


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|im_end|>")
    tok.add_special_tokens({"additional_special_tokens": SPECIAL[2:]})
    tok.add_tokens(["<|im_start|>"], special_tokens=True)
    return tok


def tiny_config(tokenizer):
    from transformers import Qwen3VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    text = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
        rope_theta=10000.0, rope_scaling={"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True},
        rms_norm_eps=1e-6, tie_word_embeddings=False,
    )
    vision = dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=4,
        spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=16,
        deepstack_visual_indexes=[0],
    )
    return Qwen3VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False,
    )


def tiny_ttt_config() -> SpatialTTTConfig:
    # small chunk and windows so that a few frames cross chunk ends and evict cache entries
    return SpatialTTTConfig(
        lact_layers=(0, 1, 2), num_lact_heads=2, lact_chunk_size=24, window_size=20, anchor_window=40,
        frame_size=TINY_FRAME,
    )


def make_tiny_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """Write a tiny random Spatial-TTT (weights, configs, tokenizer) to `directory`."""
    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    cfg = tiny_ttt_config()
    model = build_model(tiny_config(tok), cfg)
    with torch.no_grad():  # make the TTT branch visible: the released gate starts at zero
        for layer in model.model.language_model.layers:
            attn = layer.self_attn
            if hasattr(attn, "ttt_scale_proj"):
                attn.ttt_scale_proj.bias.fill_(1.0)
                attn.ttt_scale_proj.weight.normal_(0, 0.1)
                attn.lr_proj.bias.fill_(2.0)  # large inner steps so writes change the weights
                for conv in (attn.conv_q, attn.conv_k, attn.conv_v):
                    conv.weight.add_(0.05 * torch.randn_like(conv.weight))
    return save_checkpoint(model, cfg, directory, tokenizer=tok)
