"""Stage 2, detection: the chip plan, the oriented-box finder, detections, the model manifest, and one
scene observed.
"""
