"""shrink-plugin-lowrank: the `compress.lowrank` pass and the `acme-a53-board` target profile."""

__version__ = "0.1.0"
