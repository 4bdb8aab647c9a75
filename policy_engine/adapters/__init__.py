"""I/O adapters: each moves data between the outside world and the core, nothing more."""
