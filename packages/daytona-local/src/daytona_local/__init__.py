"""daytona_local: a Daytona-compatible server for one Linux machine."""
