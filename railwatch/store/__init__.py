"""Stage 4, the store: the SQLite database of scenes, detections and runs, and the batch job that fills it."""
