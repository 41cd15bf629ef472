"""shrink's built-in plugins, registered through the `shrink` entry-point group like any third-party plugin."""
