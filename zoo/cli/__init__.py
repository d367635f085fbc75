"""The command line: thin typer apps over the library."""
