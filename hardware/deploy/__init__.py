"""Deploy releases to devices over SSH (Fabric): verified, atomic, health-checked, rolled back on failure.

One idea per module: ``settings`` (validated options), ``wheels`` (offline wheelhouse and pip
resolution for a target), ``release`` (staging and content id), ``plan`` (what a deploy ships),
``device`` (each step on one device), ``procedure`` (the order of steps and rollback),
``fleet`` (many devices in parallel) and ``cli`` (the commands behind the invoke tasks, also
``python -m hardware.deploy``).
"""
