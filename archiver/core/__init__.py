"""The model of a capture and what every layer shares: atomic files, URLs, text."""
