"""Segrisk web dashboard and the `segrisk` command line."""
