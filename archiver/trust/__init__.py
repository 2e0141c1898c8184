"""Everything that vouches: keys, signatures, manifests, time-stamps, the custody log."""
