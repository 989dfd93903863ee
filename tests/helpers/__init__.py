"""Reusable test helpers: synthetic aggregate tables, a Quarto-cell executor."""
