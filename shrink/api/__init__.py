"""The contracts between shrink and its plugins: Pass, Source, DataProvider, ModelFamily, Artifact, Context,
Recipe, Target, Check and the hook specifications. Imports no model library; everything else in shrink builds on it."""
