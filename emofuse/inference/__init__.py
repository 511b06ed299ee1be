"""Emotion of audio with a trained model: the recogniser and its backends, ONNX export."""
