"""Segrisk models: personas, RFM, credit risk (issues 3 and 4)."""
