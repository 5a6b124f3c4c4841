"""Encryption: AES-256-GCM keys, per-file subkeys and nonces (not a codec: it never compresses)."""

from __future__ import annotations

from exchange_store.crypto.aes import check_key

__all__ = ["check_key"]
