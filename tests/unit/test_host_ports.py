"""Rig ports come from below the kernel's ephemeral range, free on every address, never twice."""

from __future__ import annotations

import socket

from anycast_ctl.lab.net import host_ports


def test_the_ephemeral_range_is_read_from_the_kernels_file_format():
    assert host_ports.ephemeral_low("32768\t60999\n") == 32768
    assert host_ports.ephemeral_low("49152 65535") == 49152


def test_an_unreadable_range_falls_back_to_linux_default():
    assert host_ports.ephemeral_low("") == 32768
    assert host_ports.ephemeral_low("garbage") == 32768


def test_candidates_are_the_ports_just_below_the_ephemeral_range():
    for low in (32768, 49152, 15000):
        ports = host_ports.candidate_range(low)
        assert ports.stop == low
        assert ports.start == max(host_ports.LOWEST, low - host_ports.SPAN)


def test_a_range_starting_at_the_registered_ports_leaves_candidates_above_them():
    ports = host_ports.candidate_range(1024)
    assert ports.start == host_ports.LOWEST
    assert len(ports) == host_ports.SPAN


def test_no_ports_asked_for_none_given():
    assert host_ports.free_ports(0) == []


def test_picked_ports_are_distinct_bindable_and_outside_the_ephemeral_range():
    low = host_ports.ephemeral_low()
    ports = host_ports.free_ports(20)
    assert len(set(ports)) == 20
    assert all(port < low for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_someone_listens_on_is_not_free():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not host_ports._free(listener.getsockname()[1])


def test_no_port_is_handed_out_twice_in_one_process():
    first = set(host_ports.free_ports(50))
    second = set(host_ports.free_ports(50))
    assert not first & second
