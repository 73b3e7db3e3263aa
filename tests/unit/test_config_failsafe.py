"""Validation of the fail-safe and flap settings: path-precise errors, one line each."""

from __future__ import annotations

import pytest
from test_config_node import GOOD, errors_of, write

from anycast_ctl.config.node import load_node_config


def test_lifeline_defaults_are_tight_after_start_up(tmp_path):
    cfg = load_node_config(write(tmp_path, GOOD))
    assert cfg.lifeline.stall_after <= 0.6 and cfg.lifeline.exabgp_answer_within <= 0.5
    assert cfg.lifeline.startup_stall_after >= 10 * cfg.lifeline.stall_after


@pytest.mark.parametrize(
    "block, expected",
    [
        (
            "lifeline: {stall_after: 0.1}",
            "lifeline.stall_after: Input should be greater than or equal to 0.3",
        ),
        (
            "lifeline: {exabgp_answer_within: 0}",
            "lifeline.exabgp_answer_within: Input should be greater than or equal to 0.2",
        ),
        (
            "lifeline: {stall_after: 2, startup_stall_after: 1}",
            "lifeline: startup_stall_after (1.0s) must not be shorter than stall_after (2.0s)",
        ),
        ("lifeline: {stall_afer: 1}", "lifeline.stall_afer: unknown field (check its spelling)"),
    ],
)
def test_bad_lifeline_settings_name_the_field(tmp_path, block, expected):
    path = write(tmp_path, GOOD + block + "\n")
    assert errors_of(path) == [f"{path}: {expected}"]


def test_window_and_damping_defaults(tmp_path):
    cfg = load_node_config(write(tmp_path, GOOD))
    assert cfg.timing.window is None  # fall in a row unless a window is set
    rule = cfg.damping.rule()
    assert rule is not None and rule.reuse < rule.suppress
    off = load_node_config(write(tmp_path, GOOD + "damping: {enabled: false}\n"))
    assert off.damping.rule() is None


@pytest.mark.parametrize(
    "block, expected",
    [
        (
            "timing: {fall: 8, window: 5}",
            "timing: window (5) must be at least fall (8): fall soft failures among the last "
            "window results withdraw the VIP",
        ),
        ("timing: {window: 0}", "timing.window: Input should be greater than or equal to 1"),
        (
            "damping: {reuse: 3000}",
            "damping: reuse (3000) must be below suppress (2000): a suppressed VIP comes back "
            "when its penalty decays below reuse",
        ),
        ("damping: {half_life: 0}", "damping.half_life: Input should be greater than 0"),
        ("damping: {penalty: -1}", "damping.penalty: Input should be greater than 0"),
        ("damping: {halflife: 5}", "damping.halflife: unknown field (check its spelling)"),
    ],
)
def test_bad_flap_settings_name_the_field(tmp_path, block, expected):
    path = write(tmp_path, GOOD + block + "\n")
    assert errors_of(path) == [f"{path}: {expected}"]


def test_a_vip_timing_window_is_checked_at_its_path(tmp_path):
    text = GOOD.replace(
        "checks: [web]\n    communities",
        "checks: [web]\n    timing: {fall: 3, window: 2}\n    communities",
    )
    path = write(tmp_path, text)
    (line,) = errors_of(path)
    assert line.startswith(f"{path}: vips[0].timing: window (2) must be at least fall (3)")
