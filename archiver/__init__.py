"""archiver: capture online evidence, videos included, into verifiable WARC 1.1 files."""

__version__ = "0.1.0"
TOOL_NAME = "archiver"

__all__ = ["TOOL_NAME", "__version__"]
