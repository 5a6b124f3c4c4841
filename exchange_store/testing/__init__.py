"""exchange_store.testing."""
