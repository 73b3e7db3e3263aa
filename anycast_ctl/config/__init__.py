"""Config and topology models, and their loading with path-precise errors."""
