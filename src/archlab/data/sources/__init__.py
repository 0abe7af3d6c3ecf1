"""Readers for the file formats users bring; each returns in-memory arrays."""
