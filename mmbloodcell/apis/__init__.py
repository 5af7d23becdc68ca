"""User-facing APIs."""
