"""Emotion of audio with a trained model: the recogniser and its backends, ONNX export.

>>> from emofuse.inference import EmotionRecognizer  # doctest: +SKIP
>>> EmotionRecognizer.load().predict("clip.wav").label  # doctest: +SKIP
'angry'
"""

from emofuse.inference.recognizer import (
    SILENCE,
    Backend,
    EmotionRecognizer,
    Prediction,
    Segment,
    TorchBackend,
)

__all__ = ["Backend", "EmotionRecognizer", "Prediction", "SILENCE", "Segment", "TorchBackend"]
