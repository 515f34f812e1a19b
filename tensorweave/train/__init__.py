"""train layer; see the modules."""
