"""emofuse: speech emotion recognition with multi-scale, multi-feature cross-attention fusion."""

__version__ = "0.1.0"
