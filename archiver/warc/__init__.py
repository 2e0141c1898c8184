"""WARC files: the writer, the reader (our own streaming scanner), gzip members, the field rules."""
