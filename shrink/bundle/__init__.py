"""The bundle: atomic writing with a manifest, golden I/O, and `verify` (integrity, checks, golden)."""
