"""`shrink search`'s machinery: objectives and constraints, the Optuna study, and plain recipes for its results."""
