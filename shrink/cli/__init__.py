"""The `shrink` command line (`shrink.cli.main`) and its console, the one place output is printed."""
