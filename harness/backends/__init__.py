"""Backends: the registry every backend registers in through one entry-point group, and the user's own model
(``--backend=custom``)."""
