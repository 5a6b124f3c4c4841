"""The newcomer path: the first command after install, in any directory."""

from __future__ import annotations

import filecmp
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from exchange_store.cli.main import main
from exchange_store.defaults import DEFAULT_ETC

REPO_ETC = Path(__file__).resolve().parents[1] / "etc"


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exchange_store.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_the_packaged_etc_is_the_shipped_etc() -> None:
    files = sorted(p.relative_to(REPO_ETC) for p in REPO_ETC.rglob("*") if p.is_file())
    packaged = sorted(p.relative_to(DEFAULT_ETC) for p in DEFAULT_ETC.rglob("*") if p.is_file())
    assert files == packaged
    _, mismatch, errors = filecmp.cmpfiles(REPO_ETC, DEFAULT_ETC, [str(f) for f in files], False)
    assert mismatch == [] and errors == []


def test_demo_is_a_first_command_in_an_empty_directory(tmp_path) -> None:
    out = _cli(
        *("demo", "--rows", "40000", "--splits", "2", "--partitions", "2", "--json"),
        *("--executor", "threads"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "using the shipped configuration" in out.stderr
    assert "created the missing key file" in out.stdout
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["correct"] is True and summary["leftover_files"] == 0
    for key in ("exchange.key", "snapshot.key"):
        mode = stat.S_IMODE((tmp_path / "var" / key).stat().st_mode)
        assert mode == 0o600
    # The second run keeps the keys it created.
    before = (tmp_path / "var" / "exchange.key").read_bytes()
    again = _cli("demo", "--rows", "20000", "--splits", "2", "--executor", "threads", cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-2000:]
    assert (tmp_path / "var" / "exchange.key").read_bytes() == before


def test_a_missing_etc_names_the_command_that_writes_it(tmp_path, capsys) -> None:
    os.chdir(tmp_path)
    assert main(["gc", "--etc", "nowhere"]) == 2
    assert "exchange-store init nowhere" in capsys.readouterr().err


def test_init_writes_the_shipped_etc_and_never_overwrites(tmp_path, capsys) -> None:
    target = tmp_path / "conf"
    assert main(["init", str(target)]) == 0
    assert (target / "exchange-manager.properties").read_text() == (
        REPO_ETC / "exchange-manager.properties"
    ).read_text()
    assert (target / "filesystem" / "exchange.properties").exists()
    assert main(["init", str(target)]) == 2
    assert "never overwrites" in capsys.readouterr().err


def test_config_check_prints_the_effective_configuration_with_secrets_masked(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "etc"]) == 0
    manager = tmp_path / "etc" / "exchange-manager.properties"
    text = manager.read_text().replace("exchange-filesystem-type=exchange\n", "")
    text = text.replace("var/exchange\n", "s3://bucket/spool\n")
    manager.write_text(
        text + "exchange.s3.aws-access-key=AKIAEXAMPLE\nexchange.s3.aws-secret-key=hunter2\n"
    )
    (tmp_path / "var").mkdir()
    for key in ("exchange.key", "snapshot.key"):
        assert main(["keygen", f"var/{key}"]) == 0
    capsys.readouterr()
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "AKIAEXAMPLE" not in out
    assert "exchange.s3.aws-secret-key = ********" in out
    assert "exchange.lease-ttl = 60s    (default)" in out
    assert "configuration valid" in out
    manager.write_text(manager.read_text() + "exchange.lease-tll=5s\n")
    assert main(["config", "check"]) == 2
    out = capsys.readouterr().out
    assert "exchange.lease-tll" in out and "did you mean" in out


@pytest.mark.parametrize("missing", ["var/exchange.key"])
def test_config_check_says_the_one_command_for_a_missing_key(
    tmp_path, capsys, monkeypatch, missing
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "etc"]) == 0
    capsys.readouterr()
    assert main(["config", "check"]) == 2
    assert f"exchange-store keygen {tmp_path / missing}" in capsys.readouterr().out


def test_config_check_masks_credential_storage_options(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "etc"]) == 0
    (tmp_path / "etc" / "filesystem" / "blob.properties").write_text(
        "fs.client.type=fsspec\nfsspec.protocol=abfs\n"
        "fsspec.option.account_name=visibleaccount\nfsspec.option.account_key=s3cr3tvalue\n"
    )
    capsys.readouterr()
    main(["config", "check"])
    out = capsys.readouterr().out
    assert "fsspec.option.account_key = ********" in out
    assert "s3cr3tvalue" not in out
    assert "fsspec.option.account_name = visibleaccount" in out
