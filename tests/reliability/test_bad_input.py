"""Bad input: every malformed file, hostile id, wrong key or foreign handle gets a clear error.

Each case checks the error class AND that the message names what is at fault (the file, the
key, the id), so an operator can fix it without reading code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange_store.errors import ConfigurationError, ExchangeStoreError, InvalidArgumentError
from exchange_store.ids import check_id

from ._api import exchange_context, exchange_manager

HOSTILE_IDS = [
    "../x",
    "..",
    ".",
    "",
    "a" * 129,
    "é",
    "日本",
    "a/b",
    "a\\b",
    "a b",
    "a\x00b",
    "a\nb",
    "q1;rm",
    "%2e%2e",
    None,
    5,
    b"q1",
]
GOOD_IDS = ["a", "A-z_0-9", "a" * 128, "0", "-", "_"]


def write_etc(root: Path, manager: str | None, filesystems: dict[str, str] | None = None) -> Path:
    etc = root / "etc"
    etc.mkdir()
    if manager is not None:
        (etc / "exchange-manager.properties").write_text(manager)
    for name, text in (filesystems or {}).items():
        (etc / "filesystem").mkdir(exist_ok=True)
        (etc / "filesystem" / f"{name}.properties").write_text(text)
    return etc


BASE = "exchange.base-directories={base}\n"
MANAGER_FILE = "exchange-manager.properties"

# (id, exchange-manager.properties text, filesystem files, words the message must contain)
CONFIG_CASES = [
    (
        "unknown-key",
        BASE + "exchange.base-directory={base}\n",
        {},
        [MANAGER_FILE, "exchange.base-directory", "exchange.base-directories"],
    ),
    (
        "typo-key-line",
        BASE + "exchange.compresion-codec=LZ4\n",
        {},
        [MANAGER_FILE + ":2", "exchange.compresion-codec"],
    ),
    (
        "missing-base",
        "exchange.compression-codec=LZ4\n",
        {},
        [MANAGER_FILE, "exchange.base-directories"],
    ),
    ("empty-base", "exchange.base-directories=\n", {}, [MANAGER_FILE, "exchange.base-directories"]),
    (
        "bad-codec",
        BASE + "exchange.compression-codec=SNAPPY\n",
        {},
        [MANAGER_FILE, "exchange.compression-codec", "SNAPPY", "ZSTD"],
    ),
    (
        "bad-size",
        BASE + "exchange.sink-max-file-size=12XB\n",
        {},
        [MANAGER_FILE, "exchange.sink-max-file-size", "12XB"],
    ),
    (
        "negative-size",
        BASE + "exchange.max-page-storage-size=-1MB\n",
        {},
        [MANAGER_FILE, "exchange.max-page-storage-size"],
    ),
    (
        "bad-bool",
        BASE + "exchange.encryption-enabled=maybe\n",
        {},
        [MANAGER_FILE, "exchange.encryption-enabled", "maybe"],
    ),
    (
        "bad-duration",
        BASE + "exchange.lease-ttl=10 parsecs\n",
        {},
        [MANAGER_FILE, "exchange.lease-ttl"],
    ),
    (
        "zero-partitions",
        BASE + "exchange.max-output-partition-count=0\n",
        {},
        [MANAGER_FILE, "exchange.max-output-partition-count"],
    ),
    (
        "not-an-int",
        BASE + "exchange.writer-threads=two\n",
        {},
        [MANAGER_FILE, "exchange.writer-threads", "two"],
    ),
    (
        "wrong-manager",
        BASE + "exchange-manager.name=hive\n",
        {},
        [MANAGER_FILE, "exchange-manager.name", "filesystem"],
    ),
    (
        "conflicting-compression",
        BASE + "exchange.compression-codec=ZSTD\nexchange.compression-enabled=false\n",
        {},
        [MANAGER_FILE, "exchange.compression-enabled", "exchange.compression-codec"],
    ),
    (
        "level-without-zstd",
        BASE + "exchange.compression-level=5\n",
        {},
        [MANAGER_FILE, "exchange.compression-level"],
    ),
    ("bad-unicode-escape", BASE + "exchange.compression-codec=\\uZZZZ\n", {}, [MANAGER_FILE]),
    (
        "duplicate-base",
        "exchange.base-directories={base},{base}\n",
        {},
        [MANAGER_FILE, "exchange.base-directories"],
    ),
    ("missing-fs-file", BASE + "exchange-filesystem-type=s3\n", {}, ["s3.properties"]),
    (
        "fs-path-escape",
        BASE + "exchange-filesystem-type=../x\n",
        {},
        [MANAGER_FILE, "exchange-filesystem-type"],
    ),
    (
        "unknown-fs-type",
        BASE,
        {"exchange": "fs.client.type=nfs\n"},
        ["exchange.properties", "fs.client.type", "nfs", "local"],
    ),
    (
        "unknown-fs-key",
        BASE,
        {"exchange": "fs.client.type=local\ns3.endpoint=http://x\n"},
        ["exchange.properties", "s3.endpoint"],
    ),
    (
        "s3-bad-part-size",
        "exchange.base-directories=s3://bucket/x\n",
        {"exchange": "fs.client.type=s3\ns3.upload.part-size=1kB\n"},
        ["exchange.properties", "s3.upload.part-size"],
    ),
    (
        "s3-bad-bool",
        "exchange.base-directories=s3://bucket/x\n",
        {"exchange": "fs.client.type=s3\ns3.path-style-access=sometimes\n"},
        ["exchange.properties", "s3.path-style-access", "sometimes"],
    ),
]


@pytest.mark.parametrize(
    ("manager_text", "fs_files", "must_name"),
    [pytest.param(m, f, w, id=i) for i, m, f, w in CONFIG_CASES],
)
def test_malformed_properties(tmp_path, manager_text, fs_files, must_name, figures):
    base = tmp_path / "spool"
    etc = write_etc(tmp_path, manager_text.format(base=base), fs_files)
    with pytest.raises(ConfigurationError) as info:
        exchange_manager().from_etc(etc)
    message = str(info.value)
    for word in must_name:
        assert word in message, f"{word!r} not in {message!r}"
    figures.add("bad_input", "config_cases")


def test_missing_manager_file_names_it(tmp_path, figures):
    etc = write_etc(tmp_path, None)
    with pytest.raises(ConfigurationError, match=MANAGER_FILE):
        exchange_manager().from_etc(etc)
    with pytest.raises(ConfigurationError, match="no-such-etc"):
        exchange_manager().from_etc(tmp_path / "no-such-etc")
    figures.add("bad_input", "config_cases", 2)


def test_good_etc_loads(tmp_path):
    etc = write_etc(
        tmp_path, BASE.format(base=tmp_path / "spool"), {"exchange": "fs.client.type=local\n"}
    )
    manager = exchange_manager().from_etc(etc)
    assert manager is not None


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=repr)
@pytest.mark.parametrize("field", ["query_id", "exchange_id"])
def test_hostile_exchange_ids(bad, field, figures):
    kwargs = {"query_id": "q1", "exchange_id": "e1", field: bad}
    with pytest.raises(InvalidArgumentError) as info:
        exchange_context()(**kwargs)
    assert field in str(info.value)
    if isinstance(bad, str) and 0 < len(bad) <= 20:
        assert repr(bad) in str(info.value)
    figures.add("bad_input", "hostile_ids")


@pytest.mark.parametrize("good", GOOD_IDS)
def test_good_ids_pass(good):
    assert check_id(good, "query_id") == good
    ctx = exchange_context()(query_id=good, exchange_id=good)
    assert ctx.query_id == good


@pytest.fixture
def manager(tmp_path):
    mgr = exchange_manager().from_properties(
        {
            "exchange.base-directories": str(tmp_path / "spool"),
            "exchange.max-page-storage-size": "1kB",
            "exchange.max-output-partition-count": "1000",
        }
    )
    yield mgr
    close = getattr(mgr, "close", None)
    if close:
        close()


@pytest.fixture
def exchange(manager):
    ex = manager.create_exchange(exchange_context()("q1", "e1"), output_partition_count=4)
    yield ex
    ex.close()


def test_partition_count_limit(manager, figures):
    with pytest.raises(
        InvalidArgumentError, match="Max number of output partitions exceeded for exchange"
    ):
        manager.create_exchange(exchange_context()("q1", "big"), output_partition_count=1001)
    for bad in (-1, "4", None, True):
        with pytest.raises(InvalidArgumentError, match=r"output_partition_count|partition"):
            manager.create_exchange(exchange_context()("q1", "bad"), output_partition_count=bad)
    figures.add("bad_input", "argument_cases", 5)


@pytest.mark.parametrize("bad", [-1, True, "0", None, 1.0])
def test_bad_task_partition_and_attempt_ids(exchange, bad, figures):
    with pytest.raises(InvalidArgumentError, match="task_partition"):
        exchange.add_sink(bad)
    sink = exchange.add_sink(0)
    with pytest.raises(InvalidArgumentError, match="attempt"):
        exchange.instantiate_sink(sink, bad)
    figures.add("bad_input", "argument_cases", 2)


def test_record_over_the_limit(manager, exchange, figures):
    sink_handle = exchange.add_sink(0)
    sink = manager.create_sink(exchange.instantiate_sink(sink_handle, 0))
    sink.add(0, b"x" * 1024)  # exactly the limit: accepted
    with pytest.raises(InvalidArgumentError) as info:
        sink.add(1, b"x" * 1025)
    assert "1025" in str(info.value)
    assert "exchange.max-page-storage-size" in str(info.value) or "1024" in str(info.value)
    for bad_partition in (-1, 4, True, "0"):
        with pytest.raises(InvalidArgumentError, match="partition"):
            sink.add(bad_partition, b"x")
    with pytest.raises((InvalidArgumentError, TypeError)):
        sink.add(0, "not bytes")
    sink.finish()
    figures.add("bad_input", "argument_cases", 6)


def test_handles_from_another_exchange(manager, exchange, figures):
    other = manager.create_exchange(exchange_context()("q1", "e2"), output_partition_count=4)
    try:
        foreign = other.add_sink(0)
        with pytest.raises(InvalidArgumentError) as info:
            exchange.instantiate_sink(foreign, 0)
        assert "e2" in str(info.value) or "another exchange" in str(info.value)
        with pytest.raises(InvalidArgumentError):
            exchange.sink_finished(foreign, 0)
    finally:
        other.close()
    figures.add("bad_input", "foreign_handles", 2)


def test_source_handles_of_another_manager_config(tmp_path, manager, exchange, figures):
    sink_handle = exchange.add_sink(0)
    exchange.no_more_sinks()
    with manager.create_sink(exchange.instantiate_sink(sink_handle, 0)) as sink:
        sink.add(0, b"r")
    exchange.sink_finished(sink_handle, 0)
    exchange.all_required_sinks_finished()
    handles = exchange.get_source_handles()
    other = exchange_manager().from_properties(
        {"exchange.base-directories": str(tmp_path / "elsewhere")}
    )
    with pytest.raises(InvalidArgumentError):
        source = other.create_source(handles)
        list(source)
    figures.add("bad_input", "foreign_handles")


def test_get_source_handles_too_early(exchange, figures):
    exchange.add_sink(0)
    with pytest.raises(ExchangeStoreError, match=r"(?i)finished|not all|before"):
        exchange.get_source_handles()
    figures.add("bad_input", "argument_cases")
