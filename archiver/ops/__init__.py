"""Operations on an archive: import and rebuild, cleanup, extract, verify."""
