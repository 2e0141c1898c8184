"""archiver's tests.  A regular package, so that ``tests`` means this folder even where
another distribution (pywb) installs a top-level ``tests`` package into site-packages."""
