"""``python -m bench scale`` repeats short drains and keeps the median: how many repeats a
point gets, how they combine into its figure, and how the reports show the spread."""

from __future__ import annotations

from typing import Any

import pytest

from bench import profiles, scale, scale_measures, scale_report
from bench.report import Figure, repeats_text

EN_DASH = "\u2013"


@pytest.mark.parametrize("ready, repeats", [
    (200, 5), (10_000, 5), (10_001, 3), (20_000, 3), (100_000, 3), (100_001, 1),
    (1_000_000, 1),
])
def test_full_runs_repeat_the_short_drains_most(ready: int, repeats: int) -> None:
    assert profiles.drain_repeats(profiles.SCALE_FULL, ready) == repeats


@pytest.mark.parametrize("group", ["queues", "processes"])
def test_only_the_backlog_and_future_curves_repeat_by_default(group: str) -> None:
    assert profiles.drain_repeats(profiles.SCALE_FULL, 10_000, group) == 1
    sizes = scale.sizes_from(scale.parse_args(["--drain-repeats", "2"]))
    assert profiles.drain_repeats(sizes, 10_000, group) == 2


def test_quick_runs_drain_each_point_once() -> None:
    assert {profiles.drain_repeats(profiles.SCALE_QUICK, n) for n in (1, 200, 10**6)} == {1}


@pytest.mark.parametrize("argv", [[], ["--quick"]])
def test_drain_repeats_flag_sets_every_point(argv: list[str]) -> None:
    sizes = scale.sizes_from(scale.parse_args([*argv, "--drain-repeats", "2"]))
    assert {profiles.drain_repeats(sizes, n) for n in (200, 10_000, 10**6)} == {2}


def test_without_the_flag_the_rule_stays() -> None:
    sizes = scale.sizes_from(scale.parse_args([]))
    assert sizes == profiles.SCALE_FULL


@pytest.mark.parametrize("value", ["0", "-3"])
def test_drain_repeats_below_one_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        scale.parse_args(["--drain-repeats", value])
    assert exit_.value.code == 2
    assert f"--drain-repeats must be at least 1, got {value}" in capsys.readouterr().err


def _run(rate: float, **detail: Any) -> Figure:
    return Figure(rate, "", {"jobs": 100, "seconds": 100 / rate, **detail})


def test_median_of_an_odd_count_is_the_middle_drain_with_every_rate_in_order() -> None:
    runs = [_run(9_000.0), _run(7_100.0), _run(10_900.0), _run(8_400.0), _run(8_800.0)]
    figure = scale_measures.median_drain(runs)
    assert figure.value == 8_800.0
    assert figure.detail["seconds"] == pytest.approx(100 / 8_800)
    assert figure.detail["repeats"] == [9_000.0, 7_100.0, 10_900.0, 8_400.0, 8_800.0]


def test_median_of_an_even_count_is_the_lower_middle_drain() -> None:
    figure = scale_measures.median_drain([_run(200.0), _run(100.0), _run(400.0), _run(300.0)])
    assert figure.value == 200.0
    assert figure.detail["repeats"] == [200.0, 100.0, 400.0, 300.0]


def test_one_drain_is_its_own_median() -> None:
    bounded = _run(50.0, bounded=True)
    figure = scale_measures.median_drain([bounded])
    assert figure.value == 50.0
    assert (figure.detail["bounded"], figure.detail["repeats"]) == (True, [50.0])


def test_a_failed_repeat_fails_the_point_with_its_note() -> None:
    failed = Figure.missing("3 jobs failed")
    assert scale_measures.median_drain([_run(10.0), failed]) is failed
    with pytest.raises(ValueError):
        scale_measures.median_drain([])


def test_bounded_and_failed_drains_are_not_repeated() -> None:
    assert scale_measures.repeatable(_run(10.0, bounded=False))
    assert not scale_measures.repeatable(_run(10.0, bounded=True))
    assert not scale_measures.repeatable(Figure.missing("the worker exited"))


def test_repeats_text_gives_the_count_and_the_range() -> None:
    assert repeats_text([9_000.0, 7_100.4, 10_900.0]) == f"median of 3: 7,100{EN_DASH}10,900"
    assert repeats_text([8_400.0]) == ""
    assert repeats_text([]) == ""


def _curve(x: int, gw: float, repeats: list[float] | None = None, **detail: Any) -> dict[str, Any]:
    more = {"repeats": repeats} if repeats else {}
    return {
        "group": "backlog", "x": x, "ready": x, "profile": "tuned", "loadavg": 1.0,
        "drain": {
            "gw": {"value": gw, "note": "", "detail": {"bounded": False, **more, **detail}},
            "reference": {"value": None, "note": "not measured", "detail": {}},
        },
        "fetch": None,
    }


def test_markdown_shows_the_spread_of_the_repeats() -> None:
    table = scale_report.markdown([
        _curve(10_000, 8_400.0, [8_400.0, 7_100.0, 10_900.0, 9_000.0, 8_000.0]),
        _curve(1_000_000, 7_500.0, [7_500.0]),
    ])
    assert f"| 8,400 (median of 5: 7,100{EN_DASH}10,900) |" in table
    assert "| 7,500 |" in table


def test_markdown_of_a_bounded_drain_says_bounded() -> None:
    curve = _curve(1_000_000, 500.0, [500.0], jobs=45_000, of=1_000_000, seconds=90.0)
    curve["drain"]["gw"]["detail"]["bounded"] = True
    assert "500 (bounded: 45,000 of 1,000,000 in 90 s)" in scale_report.markdown([curve])


def test_spread_lines_compare_the_medians_and_say_so() -> None:
    lines = scale_report.spread_lines([
        _curve(10_000, 10_000.0, [10_000.0, 9_000.0, 11_000.0, 9_500.0, 12_000.0]),
        _curve(100_000, 9_000.0, [9_000.0, 8_800.0, 9_100.0]),
        _curve(1_000_000, 8_500.0),
    ])
    assert lines == [
        "gw tuned, backlog curve: slowest drain (backlog 1,000,000: 8,500 jobs/s, 1 run) is"
        " 15% below the fastest (backlog 10,000: 10,000 jobs/s, median of 5 runs)"
    ]


def test_spread_lines_judge_each_curve_on_its_own() -> None:
    future = [
        {**_curve(0, 6_000.0, [6_000.0]), "group": "future"},
        {**_curve(1_000_000, 5_700.0, [5_700.0]), "group": "future"},
    ]
    lines = scale_report.spread_lines([_curve(10_000, 10_000.0), *future])
    assert lines == [
        "gw tuned, future curve: slowest drain (future 1,000,000: 5,700 jobs/s, 1 run) is 5%"
        " below the fastest (future 0: 6,000 jobs/s, 1 run)"
    ]
