"""The pytest face: the plugin (the ``pytest11`` entry point ``harness.plugin``), one module per job."""

# Registered in this order, each a plugin of its own: options and their validation, the fixtures, the
# replay session, the results; then the clause marker, --level and the verdict per level; the session's
# preflight in live and record mode; rows written as each check finishes, and the progress line.
pytest_plugins = [
    "harness.plugin.options",
    "harness.plugin.fixtures",
    "harness.plugin.replay",
    "harness.plugin.results",
    "harness.plugin.clauses",
    "harness.plugin.preflight",
    "harness.plugin.run_log",
]
