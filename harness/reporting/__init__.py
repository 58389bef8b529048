"""Reporting: the results schema every suite and benchmark writes, and the report that reads it."""
