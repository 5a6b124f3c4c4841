"""Administration: what ``exchange-store ls`` shows and what ``exchange-store gc`` collects.

* :mod:`.inventory`: exchanges, leases, task partitions and attempts found in storage.
* :mod:`.gc`: :class:`~exchange_store.admin.gc.GarbageCollector`.
* :mod:`.snapshots`: the snapshot store as the admin tools see it.
* :mod:`.storage`: the storage an etc directory configures.
"""
