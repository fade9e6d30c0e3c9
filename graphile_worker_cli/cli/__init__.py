"""The ``gw`` command line: thin typer commands, each calling one library function."""
