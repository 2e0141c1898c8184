"""Tests of archiver.core: the base every layer stands on (atomic files)."""
