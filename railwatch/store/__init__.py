"""Stage 4, the store: the SQLite database of scenes, detections, counts and runs."""
