"""The vision tower in the cost model: tokens per image and per frame, parameters, FLOPs and activations.

Counted the way the text model is (flops.py, memory.py): matmuls exactly, per image, for the three tower kinds the
registry names (`Vision.cost`): Qwen2.5-VL (RMSNorm, SwiGLU, window attention but in `fullatt_block_indexes`),
Qwen3-VL (LayerNorm, GELU MLP, learned position embeddings, deepstack mergers) and a SigLIP/CLIP ViT with
LLaVA-OneVision's MLP projector. tests/cost/test_vision_cost.py checks parameters against the tiny models and the
published sizes, FLOPs against torch's FlopCounterMode, and token counts against the processors.

A frozen tower before every trained part costs its forward only (no backward, nothing saved for backward, nothing
recomputed); a trained part costs input and weight gradients, and everything after it input gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

QWEN_KINDS = ("qwen2_5_vl", "qwen3_vl")


@dataclass(frozen=True)
class VisionArch:
    """The numbers of a vision tower and projector that cost depends on (from config.json's vision_config)."""

    kind: str  # qwen2_5_vl | qwen3_vl | vit
    depth: int
    hidden: int
    intermediate: int
    heads: int
    patch: int
    out_hidden: int  # the LM's hidden size (the projector's output)
    merge: int = 1  # Qwen: spatial merge (2x2 patches -> one token)
    temporal_patch: int = 1  # Qwen: frames per temporal patch
    in_channels: int = 3
    window: int = 0  # Qwen2.5-VL window attention size in pixels (0: all full attention)
    full_blocks: tuple[int, ...] = ()  # Qwen2.5-VL blocks with full attention
    positions: int = 0  # learned position embeddings (Qwen3-VL grid, ViT patches)
    deepstack: int = 0  # Qwen3-VL extra mergers
    image_size: int = 0  # ViT input size (a tile)
    cls_token: bool = False  # CLIP
    head: bool = False  # SigLIP's attention-pooling head (counted in parameters, unused by LLaVA)
    feature_layers: int = 1  # ViT layers concatenated into the projector

    # ------------------------------------------------------------------ parameters
    def block_params(self) -> int:
        """One transformer block of the tower (weights, biases, norms)."""
        h, i = self.hidden, self.intermediate
        attn = 4 * h * h + 4 * h  # qkv (3h x h + 3h) and the output projection, all with biases
        if self.kind == "qwen2_5_vl":
            return attn + 3 * h * i + 2 * i + h + 2 * h  # SwiGLU with biases, two RMSNorms
        return attn + 2 * h * i + i + h + 4 * h  # GELU MLP with biases, two LayerNorms

    def merger_params(self, postshuffle: bool = False) -> int:
        """One Qwen merger: a norm, then (h m^2) -> (h m^2) -> out with biases."""
        wide = self.hidden * self.merge**2
        norm = (wide if postshuffle else self.hidden) * (1 if self.kind == "qwen2_5_vl" else 2)
        return norm + wide * wide + wide + wide * self.out_hidden + self.out_hidden

    def tower_params(self) -> int:
        """The vision tower without its projector."""
        h = self.hidden
        if self.kind in QWEN_KINDS:
            embed = self.in_channels * self.temporal_patch * self.patch**2 * h + (h if self.kind == "qwen3_vl" else 0)
            return embed + self.positions * h + self.depth * self.block_params()
        # SigLIP's patch convolution has a bias; CLIP's has none but adds a class embedding and a pre-layernorm.
        embed = self.in_channels * self.patch**2 * h + self.positions * h
        extra = 3 * h if self.cls_token else h
        if self.head:
            extra += h + 4 * h * h + 4 * h + 2 * h + 2 * h * self.intermediate + self.intermediate + h
        return embed + extra + self.depth * self.block_params() + 2 * h  # + post-layernorm

    def projector_params(self) -> int:
        """The projector: Qwen's merger (+ deepstack mergers), or LLaVA's 2-layer MLP and image-newline vector."""
        if self.kind in QWEN_KINDS:
            return self.merger_params() + self.deepstack * self.merger_params(postshuffle=True)
        o = self.out_hidden
        return self.hidden * self.feature_layers * o + o + o * o + o + o

    def params(self) -> int:
        """Tower and projector."""
        return self.tower_params() + self.projector_params()

    # ------------------------------------------------------------------ tokens
    def grid(self, height: int, width: int, min_pixels: int, max_pixels: int, frames: int = 1) -> tuple[int, int, int]:
        """(t, h, w) patch grid of a Qwen image (frames=1) or video, after the processor's smart resize."""
        factor = self.patch * self.merge
        h, w = smart_resize(height, width, factor, min_pixels, max_pixels)
        return max(1, math.ceil(frames / self.temporal_patch)), h // self.patch, w // self.patch

    def tokens(self, grid: tuple[int, int, int]) -> int:
        """LM tokens of a Qwen image/video grid: one per merge x merge patches."""
        t, h, w = grid
        return t * h * w // self.merge**2

    # ------------------------------------------------------------------ FLOPs
    def _parts(self, grid: tuple[int, int, int], lora_r: int = 0) -> dict[str, float]:
        """Forward matmul FLOPs by part of one Qwen image/video grid, or of one ViT tile (any grid)."""
        h, i = self.hidden, self.intermediate
        if self.kind in QWEN_KINDS:
            t, gh, gw = grid
            n = t * gh * gw
            embed = 2 * n * self.in_channels * self.temporal_patch * self.patch**2 * h
            full = t * 4 * (gh * gw) ** 2 * h  # QK^T and AV over each frame (cu_seqlens split frames)
            windowed = t * 4 * sum(s * s for s in self._windows(gh, gw)) * h
            attention = sum(full if (not self.window or b in self.full_blocks) else windowed for b in range(self.depth))
            wide, tokens = h * self.merge**2, n // self.merge**2
            first, rest = 2 * tokens * wide * wide, 2 * tokens * wide * self.out_hidden
            first, rest = first * (1 + self.deepstack), rest * (1 + self.deepstack)
        else:
            side = self.image_size // self.patch
            n = side * side + int(self.cls_token)
            embed = 2 * side * side * self.in_channels * self.patch**2 * h
            attention = self.depth * 4 * n * n * h
            kept = n - int(self.cls_token)  # LLaVA's "default" strategy drops the CLS feature before projecting
            first = 2 * kept * h * self.feature_layers * self.out_hidden
            rest = 2 * kept * self.out_hidden**2
        mlp = 3 * h * i if self.kind == "qwen2_5_vl" else 2 * h * i
        shapes = self.block_linear_shapes()
        return {
            "embed": float(embed),
            "block_linear": float(self.depth * 2 * n * (4 * h * h + mlp)),
            "attention": float(attention),
            "adapters": float(self.depth * 2 * n * lora_r * sum(a + b for a, b in shapes.values())),
            "first_qkv": float(2 * n * 3 * h * h),
            "first_qkv_lora_a": float(2 * n * lora_r * h * (3 if self.kind == "vit" else 1)),  # one lora_A per q/k/v
            "projector_first": float(first),
            "projector_rest": float(rest),
        }

    def block_linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of the linears of one block (what LoRA on the tower adapts)."""
        h, i = self.hidden, self.intermediate
        mlp = {"fc1": (h, i), "fc2": (i, h)}
        if self.kind == "qwen2_5_vl":
            mlp = {"gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
        attn = {"qkv": (h, 3 * h), "proj": (h, h)}
        if self.kind == "vit":
            attn = {"q_proj": (h, h), "k_proj": (h, h), "v_proj": (h, h), "out_proj": (h, h)}
        return attn | mlp

    def forward_flops(self, grid: tuple[int, int, int]) -> float:
        """Forward matmul FLOPs of one Qwen image/video grid, or of one ViT tile."""
        p = self._parts(grid)
        return p["embed"] + p["block_linear"] + p["attention"] + p["projector_first"] + p["projector_rest"]

    def training_flops(
        self, grid: tuple[int, int, int], trained: set[str], lora_r: int = 0, gradient_checkpointing: bool = False
    ) -> dict[str, float]:
        """Forward, backward and recompute FLOPs of one image (Qwen grid) or tile (ViT) for the trained parts.

        `trained` holds 'vision' and/or 'projector'. The tower trains whole, or through LoRA adapters of rank
        `lora_r` on its block linears; the projector trains whole. Nothing trained: forward only.
        """
        p = self._parts(grid, lora_r if "vision" in trained else 0)
        forward = sum(p[k] for k in ("embed", "block_linear", "attention", "adapters", "projector_first"))
        forward += p["projector_rest"]
        tower, projector = "vision" in trained, "projector" in trained
        backward = 0.0
        if tower and not lora_r:  # the patch embedding's input is pixels: weight gradient only
            backward += p["embed"] + 2 * p["block_linear"] + 2 * p["attention"]
        elif tower:  # frozen base: input gradients, except block 0's qkv (and its lora_A), whose input needs none
            backward += p["block_linear"] - p["first_qkv"] + 2 * p["adapters"] - p["first_qkv_lora_a"]
            backward += 2 * p["attention"]
        if projector:
            # Qwen's merger normalises first (a trained norm: its output needs a gradient); LLaVA's MLP starts with
            # the linear, whose input (the frozen tower's output) needs none.
            needs_input = tower or self.kind in QWEN_KINDS
            backward += p["projector_first"] * (1 + int(needs_input)) + 2 * p["projector_rest"]
        elif tower:
            backward += p["projector_first"] + p["projector_rest"]
        recompute = p["block_linear"] + p["attention"] + p["adapters"] if tower and gradient_checkpointing else 0.0
        return {"forward": forward, "backward": backward, "recompute": recompute}

    # ------------------------------------------------------------------ activations
    def saved_elements(
        self, grid: tuple[int, int, int], trained: set[str], lora_r: int = 0, gradient_checkpointing: bool = False
    ) -> float:
        """Elements autograd saves for backward for one Qwen image/video grid or one ViT tile (SDPA/flash attention).

        Counted tensor by tensor on transformers' towers (tests/cost/test_vision_cost.py measures them): per block the
        norms' inputs (and normalised values when their weights train), q/k/v and the attention output and
        log-sum-exp, the MLP's hidden activations, LoRA's A outputs; before the blocks the pixels (the patch
        embedding's weight gradient) and the rotary tables; after them the projector's inputs.
        """
        h, i, heads = self.hidden, self.intermediate, self.heads
        tower, projector = "vision" in trained, "projector" in trained
        if not tower and not projector:
            return 0.0
        lora = tower and lora_r > 0
        if self.kind in QWEN_KINDS:
            n = grid[0] * grid[1] * grid[2]
            rope = 2 * (h // heads)
            d = self.deepstack
            pixels = self.in_channels * self.temporal_patch * self.patch**2
            if self.kind == "qwen2_5_vl":
                block = (11 if lora else 13) * h + 4 * i + 2 + heads + (5 * lora_r if lora else 0)
                const = (rope + h + 0.5) if lora else (pixels + rope + 2 * h + 2)
                proj_extra, proj_only = 3 * h, 4 * h + 0.5
            else:
                block = 11 * h + 2 * i + heads + 4 + (4 * lora_r if lora else 0)
                const = (rope + (1 + d) * h + 0.5) if lora else (pixels + rope + (2 + d) * h + 14 + 0.5 * d)
                proj_extra, proj_only = 2 * h * (1 + d), 4 * h * (1 + d) + 2 + 0.5 * d
        else:
            side = self.image_size // self.patch
            n = side * side + int(self.cls_token)
            o = self.out_hidden
            block = 8 * h + 2 * i + heads + 4 + (6 * lora_r if lora else 0)
            const = o if lora else self.in_channels * self.patch**2 + h + o + 2
            proj_extra, proj_only = h + o, h + 2 * o
        if not tower:
            return float(n * proj_only)
        # Under gradient checkpointing each block keeps only its input; one block's activations live again while it
        # is recomputed (recompute_elements).
        per_block = h if gradient_checkpointing else block
        return float(n * (self.depth * per_block + const + (proj_extra if projector else 0)))

    def recompute_elements(self, grid: tuple[int, int, int], trained: set[str], lora_r: int = 0) -> float:
        """Under gradient checkpointing: one block's saved activations, live again while it is recomputed."""
        if "vision" not in trained:
            return 0.0
        full = self.saved_elements(grid, trained, lora_r)
        return (full - self.saved_elements(grid, trained, lora_r, gradient_checkpointing=True)) / self.depth + (
            self._tokens_in(grid) * self.hidden
        )

    def _tokens_in(self, grid: tuple[int, int, int]) -> int:
        if self.kind in QWEN_KINDS:
            return grid[0] * grid[1] * grid[2]
        side = self.image_size // self.patch
        return side * side + int(self.cls_token)

    def _windows(self, gh: int, gw: int) -> list[int]:
        """Patches per attention window of one frame (Qwen2.5-VL: windows of merged tokens, edges partial)."""
        if not self.window:
            return [gh * gw]
        size = self.window // self.merge // self.patch
        rows = [min(size, gh // self.merge - r) for r in range(0, gh // self.merge, size)]
        cols = [min(size, gw // self.merge - c) for c in range(0, gw // self.merge, size)]
        return [a * b * self.merge**2 for a in rows for b in cols]


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen's resize: each side to a multiple of `factor`, the area into [min_pixels, max_pixels] (aspect kept)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio of {height}x{width} exceeds 200, which Qwen's processors refuse")
    h, w = round(height / factor) * factor, round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def vision_arch(cfg: dict[str, Any], kind: str) -> VisionArch:
    """A `VisionArch` from config.json values (`vision_config` and the text hidden size) and the registry's kind."""
    v = cfg["vision_config"]
    text = cfg.get("text_config") or cfg
    if kind in QWEN_KINDS:
        return VisionArch(
            kind=kind,
            depth=int(v["depth"]),
            hidden=int(v["hidden_size"]),
            intermediate=int(v["intermediate_size"]),
            heads=int(v["num_heads"]),
            patch=int(v["patch_size"]),
            out_hidden=int(v.get("out_hidden_size") or text["hidden_size"]),
            merge=int(v.get("spatial_merge_size", 2)),
            temporal_patch=int(v.get("temporal_patch_size", 2)),
            in_channels=int(v.get("in_channels", v.get("in_chans", 3))),
            window=int(v.get("window_size", 0)) if kind == "qwen2_5_vl" else 0,
            full_blocks=tuple(v.get("fullatt_block_indexes") or ()),
            positions=int(v.get("num_position_embeddings", 0)) if kind == "qwen3_vl" else 0,
            deepstack=len(v.get("deepstack_visual_indexes") or ()) if kind == "qwen3_vl" else 0,
        )
    layers = cfg.get("vision_feature_layer", -1)
    cls_token = v.get("model_type") == "clip_vision_model"
    side = int(v["image_size"]) // int(v["patch_size"])
    return VisionArch(
        kind="vit",
        depth=int(v["num_hidden_layers"]),
        hidden=int(v["hidden_size"]),
        intermediate=int(v["intermediate_size"]),
        heads=int(v["num_attention_heads"]),
        patch=int(v["patch_size"]),
        out_hidden=int(text["hidden_size"]),
        in_channels=int(v.get("num_channels", 3)),
        positions=side * side + int(cls_token),
        image_size=int(v["image_size"]),
        cls_token=cls_token,
        head=bool(v.get("vision_use_head", not cls_token)) and not cls_token,
        feature_layers=len(layers) if isinstance(layers, list) else 1,
    )
