"""Machine facts of odebench.environment and the provenance summary the page's banner shows."""

from __future__ import annotations

import os

import pandas as pd

from odebench.environment import ENVIRONMENT_COLUMNS, Provenance, _cpu_model, _ram_bytes, environment


def test_ram_and_cpu_come_from_proc(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        8056532 kB\nMemFree:  1 kB\n")
    assert _ram_bytes(str(meminfo)) == 8056532 * 1024
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000 @ 3.0GHz\n")
    assert _cpu_model(str(cpuinfo)) == "Test CPU 9000 @ 3.0GHz"


def test_ram_falls_back_to_sysconf(tmp_path):
    expected = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert _ram_bytes(str(tmp_path / "missing")) == expected


def test_environment_records_ram():
    facts = environment()
    assert tuple(facts) == ENVIRONMENT_COLUMNS
    assert isinstance(facts["ram_bytes"], int) and facts["ram_bytes"] > 2**20


def test_provenance_names_the_whole_machine():
    frame = pd.DataFrame([
        dict(hostname="h", cpu="Test CPU", cores=16, ram_bytes=64 * 2**30, os_name="Linux",
             params={"threads": 1}, extra={}, numpy_version="2.0", torchode_version="1.0",
             python="3.11.7", commit="abc", timestamp="2024-05-01T12:00:59+00:00"),
        dict(hostname="h", cpu="Test CPU", cores=16, ram_bytes=64 * 2**30, os_name="Linux",
             params={"threads": 1}, extra={}, numpy_version="2.0", torchode_version="1.0",
             python="3.11.7", commit="abc", timestamp="2024-05-01T13:30:00+00:00"),
    ])
    provenance = Provenance.from_rows(frame)
    assert provenance.machine == "h (Test CPU, 16 cores, 64.0 GiB RAM, torch threads 1, Linux)"
    assert provenance.times == "2024-05-01 12:00 to 2024-05-01 13:30"
    labels = dict(provenance.items())
    assert labels["numpy"] == "2.0" and labels["torchode"] == "1.0" and labels["python"] == "3.11.7"


def test_provenance_of_old_rows_leaves_out_what_they_lack():
    frame = pd.DataFrame([dict(hostname="h", cpu="C", cores=2, os_name="Linux")])
    assert Provenance.from_rows(frame).machine == "h (C, 2 cores, Linux)"
