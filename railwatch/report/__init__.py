"""Stage 5, reporting: reported figures, the comparison with them, plots, quicklooks and the output files."""
