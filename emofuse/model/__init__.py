"""The emofuse model: multi-scale branches, fusion over N features and :class:`EmotionNet`.

Imports only torch and the padding mask of :mod:`emofuse.signal.functional`. ``ModelConfig``
holds the shared hyperparameters and ablation switches; ``BranchSpec`` describes the branch of
one input feature.
"""

from emofuse.model.blocks import (
    MultiScaleBlock1d,
    MultiScaleBlock2d,
    PlainBlock1d,
    PlainBlock2d,
    make_block,
)
from emofuse.model.branches import BranchSpec, Conv1dBranch, Conv2dBranch, make_branch
from emofuse.model.fusion import ConcatFusion, CrossAttentionFusion, SumFusion, make_fusion
from emofuse.model.net import PAPER_BRANCHES, EmotionNet, ModelConfig

__all__ = [
    "BranchSpec",
    "ConcatFusion",
    "Conv1dBranch",
    "Conv2dBranch",
    "CrossAttentionFusion",
    "EmotionNet",
    "ModelConfig",
    "MultiScaleBlock1d",
    "MultiScaleBlock2d",
    "PAPER_BRANCHES",
    "PlainBlock1d",
    "PlainBlock2d",
    "SumFusion",
    "make_block",
    "make_branch",
    "make_fusion",
]
