from redline.audit.parse import (
    bracketed,
    format_cpuset,
    parse_cpuset,
    parse_ini,
    parse_interrupts,
    parse_libvirt_conf,
    parse_version,
    wsgi_processes,
)


def test_cpuset_roundtrip() -> None:
    assert parse_cpuset("0-3,8,^2") == {0, 1, 3, 8}
    assert format_cpuset({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert parse_cpuset("") == frozenset()


def test_libvirt_conf_quotes_comments_and_multiline_lists() -> None:
    conf = parse_libvirt_conf(
        '# max_workers = 1\nmax_workers = 40 # raised\nsecurity_driver = "none"\n'
        'cgroup_controllers = [ "cpu",\n  "memory" ]\nuser = "a#b"\n'
    )
    assert conf == {"max_workers": "40", "security_driver": "none", "cgroup_controllers": "cpu,memory", "user": "a#b"}


def test_ini_default_section_does_not_leak() -> None:
    conf = parse_ini("[DEFAULT]\nworkers = 2\n[conductor]\nWorkers = 8\nworkers = 9\n")
    assert conf["DEFAULT"] == {"workers": "2"}
    assert conf["conductor"] == {"workers": "9"}  # last one wins, as in oslo.config


def test_interrupts() -> None:
    rows = parse_interrupts("   CPU0 CPU1\n 24: 1 0 IO-APIC 5-edge ACPI\nLOC: 5 6 Local timer\nERR: 0\n")
    assert rows[0].irq == "24" and rows[0].counts == (1, 0) and rows[0].is_device
    assert not rows[1].is_device


def test_small_helpers() -> None:
    assert bracketed("always [madvise] never") == "madvise"
    assert parse_version("1:9.0.0-4+deb12u2") == (9, 0, 0)
    assert wsgi_processes("WSGIDaemonProcess keystone-public processes=5 threads=1", "apache") == 5
    assert wsgi_processes("WSGIDaemonProcess keystone-public threads=1", "apache") == 1
    assert wsgi_processes("[uwsgi]\nworkers = 3\n", "uwsgi") == 3
