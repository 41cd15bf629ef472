"""The built-in checks of a final model against its target and budget, and the estimates they gate on."""
