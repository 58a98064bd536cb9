"""Root conftest: wires the synthgate plugin for this checkout."""

pytest_plugins = ["synthgate.plugin"]
