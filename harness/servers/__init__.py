"""Servers: the embedded model and every local server the harness starts."""
