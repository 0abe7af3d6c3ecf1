"""Config schemas and their validation."""
