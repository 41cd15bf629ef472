import shrink_nonexistent_dependency  # noqa: F401  (fails on purpose)
