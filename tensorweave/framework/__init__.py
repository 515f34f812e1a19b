"""framework layer; see the modules."""
