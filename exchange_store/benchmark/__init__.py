"""The storage benchmark behind ``exchange-store bench``, with its in-run baselines."""
