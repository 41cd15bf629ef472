"""The plugin host: loading plugins from the `shrink` entry points into a registry, and the target catalog."""
