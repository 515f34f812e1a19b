"""runtime layer; see the modules."""
