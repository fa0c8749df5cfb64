"""The conversation flows shipped with the package (JSON data files, one per flow)."""
