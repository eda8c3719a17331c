"""Stage 1, imagery: scenes opened, checked and warped onto the site grid as georeferenced tiles;
acquisition time; clouds; coverage.
"""
