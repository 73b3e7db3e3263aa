"""anycast-ctl-supervise's pure part: the programs file and the restart backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl import supervise
from anycast_ctl.supervise import Backoff, Program, ProgramsError, parse_programs


def test_programs_file_gives_programs_in_order() -> None:
    text = (
        '{"programs": [{"name": "haproxy", "argv": ["haproxy", "-Ws"]},'
        ' {"name": "x", "argv": ["x"]}]}'
    )
    assert parse_programs(text, "p.json") == [
        Program("haproxy", ("haproxy", "-Ws")),
        Program("x", ("x",)),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "p.json: not JSON"),
        ('{"programs": {}}', "p.json: 'programs' must be a list"),
        ('{"programs": [{"argv": ["a"]}]}', "p.json: programs[0].name must be a non-empty string"),
        ('{"programs": [{"name": "a", "argv": []}]}', "p.json: programs[0].argv must be"),
        ('{"programs": [{"name": "a", "argv": [1]}]}', "p.json: programs[0].argv must be"),
        (
            '{"programs": [{"name": "a", "argv": ["a"]}, {"name": "a", "argv": ["b"]}]}',
            "p.json: programs[1].name 'a' appears twice",
        ),
    ],
)
def test_a_malformed_programs_file_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ProgramsError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        parse_programs(text, "p.json")


def test_backoff_doubles_to_its_cap_then_gives_up() -> None:
    backoff = Backoff()
    delays = [backoff.died(100.0 + i) for i in range(supervise.MAX_DEATHS)]
    assert [round(d - (100.0 + i), 3) for i, d in enumerate(delays) if d is not None] == [
        1.0,
        2.0,
        4.0,
        8.0,
        8.0,
    ]
    assert backoff.died(100.0 + supervise.MAX_DEATHS) is None


def test_backoff_forgets_deaths_older_than_the_window() -> None:
    backoff = Backoff()
    for i in range(supervise.MAX_DEATHS):
        backoff.died(float(i))
    later = supervise.WINDOW + supervise.MAX_DEATHS + 1.0
    assert backoff.died(later) == later + supervise.FIRST_DELAY


def test_cli_usage_and_bad_file_exit_2_with_one_line(tmp_path: Path, capsys) -> None:
    assert supervise.main([]) == 2
    assert supervise.main([str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"programs": 1}')
    assert supervise.main([str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[1] == f"error: {tmp_path / 'missing.json'}: No such file or directory"
    assert err[2] == f"error: {bad}: 'programs' must be a list"
