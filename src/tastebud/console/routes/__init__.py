"""The console pages, one module per page."""
