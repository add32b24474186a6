"""gazeloc."""
