"""TensorFlow Lite for microcontrollers: `export.tflite` (torch → a full-int8 `.tflite` for TensorFlow Lite Micro,
parity-gated, with look-up-table coding of shared weights where the target's runtime decodes it).

The heavy libraries (litert-torch, ai-edge-quantizer, ai-edge-litert, tflite-micro: about 2 GB) are an optional
extra, `pip install -e '.[tflite]'`; without them the pass is listed as unavailable with that command and a recipe
that uses it does not plan (exit 2). This module imports none of them.
"""

from __future__ import annotations

from shrink import Pass, hookimpl
from shrink_tflite.export import ExportTflite


@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    return [ExportTflite]
