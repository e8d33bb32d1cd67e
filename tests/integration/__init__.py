"""End-to-end tests: the CLI and several subsystems together."""
