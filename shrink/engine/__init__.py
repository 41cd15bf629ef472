"""Running a plan: the engine (source, passes, metrics, the pass cache) and `compile` (checks, bundle)."""
