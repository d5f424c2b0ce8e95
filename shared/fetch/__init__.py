"""Metadata-only provider access: the allowlisted HTTP client and the per-token rate budget."""
