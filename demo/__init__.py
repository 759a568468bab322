"""`jetkit demo`: the main job end to end on the built-in defaults, with a summary and a report.
The top layer: it runs every other package's commands.

May import: every other package. Nothing imports it.
"""
