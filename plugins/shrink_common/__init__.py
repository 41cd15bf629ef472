"""Helpers the built-in plugin families share (torch setup and training, classifiers over arrays and their
channel pruning, layer widths, torch and ONNX export, parity, shared options and capabilities).
It imports no family; any family may import it."""
