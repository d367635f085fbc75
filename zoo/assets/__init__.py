"""Files shipped with the package (bundled models and data)."""
