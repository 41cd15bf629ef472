"""Small helpers every phase uses: strict JSON, schema problems, file hashes, units, library versions,
ONNX Runtime sessions. Imports nothing else from shrink but `shrink.errors`."""
