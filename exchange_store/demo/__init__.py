"""The main job: a multi-stage aggregation with planned failures, and its expected answer.

Used by ``exchange-store demo`` and the retry bench; imports the fault-injecting client from
:mod:`exchange_store.testing` for its storage-level faults.
"""
