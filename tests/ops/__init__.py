"""Tests of archiver.ops: verify, extract, cleanup, and fuzzing the tools that read an
archive."""
