"""Data: sources (adapters), the study's cleaning rules, splitting, the synthetic poster generator."""
