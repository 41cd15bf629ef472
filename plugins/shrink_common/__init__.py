"""Helpers the built-in plugin families share (torch setup and training, ONNX export checks, shared options).
It imports no family; any family may import it."""
