"""Results: the one schema every suite check and benchmark writes, and the reports read."""
