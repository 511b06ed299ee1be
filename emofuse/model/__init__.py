"""The emofuse model: multi-scale blocks, feature fusion and the full :class:`EmotionNet`.

Imports only torch. ``ModelConfig`` holds every hyperparameter and ablation switch.
"""

from emofuse.model.blocks import (
    MultiScaleBlock1d,
    MultiScaleBlock2d,
    PlainBlock1d,
    PlainBlock2d,
    lengths_to_mask,
    make_block,
)
from emofuse.model.fusion import ConcatFusion, CrossAttentionFusion, SumFusion, make_fusion
from emofuse.model.net import EmotionNet, ModelConfig

__all__ = [
    "ConcatFusion",
    "CrossAttentionFusion",
    "EmotionNet",
    "ModelConfig",
    "MultiScaleBlock1d",
    "MultiScaleBlock2d",
    "PlainBlock1d",
    "PlainBlock2d",
    "SumFusion",
    "lengths_to_mask",
    "make_block",
    "make_fusion",
]
