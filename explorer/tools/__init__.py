"""Console scripts (see pyproject's [project.scripts]); each builds its own Settings and is also runnable as
``python -m explorer.tools.<name>``."""
