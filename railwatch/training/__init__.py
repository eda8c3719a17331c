"""Training stands beside the pipeline: dataset export, fitting and evaluation. The pipeline
never imports it."""
