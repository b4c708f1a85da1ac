"""One module per pipeline stage, each with a `run()` that the CLI and the tests call."""
