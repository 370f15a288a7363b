"""Package placeholder; see the README."""
