"""Command-line programs; installed as ``lomar-*`` console scripts (setup.py) and wrapped by the
scripts in the repository's ``tools/``."""
