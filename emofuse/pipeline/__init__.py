"""The recogniser as one module (:class:`EmotionPipeline`), its model file and the feature cache."""

from emofuse.pipeline.modelfile import (
    BUNDLED_MODELS,
    ModelFileError,
    load_bundled_pipeline,
    load_model,
    load_pipeline,
    save_pipeline,
)
from emofuse.pipeline.pipeline import EmotionPipeline, EvalWindows, pipeline_from_config

__all__ = [
    "BUNDLED_MODELS",
    "EmotionPipeline",
    "EvalWindows",
    "ModelFileError",
    "load_bundled_pipeline",
    "load_model",
    "load_pipeline",
    "pipeline_from_config",
    "save_pipeline",
]
