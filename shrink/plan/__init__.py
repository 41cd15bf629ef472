"""recipe → plan: strict loading and validation of a recipe, resolving it against the plugins and a
target into a `Plan`, and `shrink schema`. Loads no model and no data."""
