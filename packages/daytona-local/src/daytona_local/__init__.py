"""daytona_local: a Daytona-compatible server for one Linux machine (the daytona-local distribution)."""

from importlib.metadata import version

__version__ = version("daytona-local")
