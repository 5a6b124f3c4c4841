"""exchange_store.cli."""
