"""Tests of archiver.cli: the command line as users meet it: input, exit codes, signals,
read-only copies."""
