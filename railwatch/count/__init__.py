"""Stage 3, counting: per-scene counts per zone × class, co-registration and matching between scenes,
weekly series.
"""
