"""One module per command: Complete -> Validate -> Run."""
