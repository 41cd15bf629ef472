"""Built-in target profiles (JSON), shipped as package data."""
