"""The clinician report (device session logs) and a model's evaluation report, as one self-contained HTML file."""
