"""Emotion of audio with a trained model: the recogniser and its backends, ONNX export.

``EmotionRecognizer.load().predict("clip.wav")`` gives the bundled model's answer for a file.
"""

from emofuse.inference.backends import Backend, TorchBackend
from emofuse.inference.recognizer import EmotionRecognizer
from emofuse.inference.results import NO_SPEECH, Prediction, Segment, StreamEvent
from emofuse.inference.stream import EmotionStream

__all__ = ["Backend", "EmotionRecognizer", "EmotionStream", "NO_SPEECH", "Prediction", "Segment",
           "StreamEvent", "TorchBackend"]  # fmt: skip
