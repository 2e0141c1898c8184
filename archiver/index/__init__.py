"""The Parquet provenance index: its schemas, the store, SQL queries, deduplication."""
