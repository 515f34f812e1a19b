"""Tools around a run: step timelines (`timeline`), measured op costs (`cost_model`) and the
`tensorweave profile` report (`profile`)."""
