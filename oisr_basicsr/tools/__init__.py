"""The user's tools, one module per ``oisr`` subcommand; each has ``main(argv)`` returning the exit status."""
