"""One module per command group of the ``archiver`` command."""
