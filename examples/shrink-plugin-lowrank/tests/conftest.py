# shrink's pytest plugin: tiny_model, make_recipe, make_target, cli, cli_subprocess, make_pass_input.
pytest_plugins = ["shrink.testing"]
