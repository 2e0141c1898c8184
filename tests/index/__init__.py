"""Tests of archiver.index: the Parquet provenance index and its queries."""
