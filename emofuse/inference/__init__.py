"""Emotion of audio with a trained model: the recogniser and its backends, ONNX export.

``EmotionRecognizer.load().predict("clip.wav")`` gives the bundled model's answer for a file.
"""

from emofuse.inference.recognizer import (
    NO_SPEECH,
    Backend,
    EmotionRecognizer,
    Prediction,
    Segment,
    TorchBackend,
)

__all__ = ["Backend", "EmotionRecognizer", "Prediction", "NO_SPEECH", "Segment", "TorchBackend"]
