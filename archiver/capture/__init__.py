"""A capture run, the batch around it, and its budget."""
