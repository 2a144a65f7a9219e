"""The report's goal and start-rate sections, rendered from hand-made summaries."""

from hidlr.bench.lr.report_goals import paired_goal_lines, paired_start_rate_lines


def test_the_paired_goal_table_shows_each_workload_and_the_counts():
    paired = {
        "rows": [
            {
                "workload": "w1",
                "seeds": 9,
                "gap_to_grid": -0.0312,
                "lower_than_grid": 7,
                "gap_to_one_group": float("inf"),
                "lower_than_one_group": 0,
            },
        ],
        "within": 1,
        "better_than_one_group": 0,
        "of": 1,
    }
    lines = paired_goal_lines(paired)
    assert "| w1 | -3.1% | 7 of 9 | failed | 0 of 9 |" in lines
    assert "| **goal count** | within 1%: 1 of 1 | | lower: 0 of 1 | |" in lines
    assert paired_goal_lines({"rows": [], "within": 0, "better_than_one_group": 0, "of": 0}) == []
    assert paired_goal_lines(None) == []


def test_the_paired_start_rate_table_shows_gaps_seed_counts_and_the_spread():
    table = {
        "w1": {
            "hidlr-diag": {
                "by_lr0": {1e-5: {"gap": 0.1, "higher": 2, "lower": 1, "seeds": 3}},
                "spread": 0.1,
                "within": False,
            }
        }
    }
    lines = paired_start_rate_lines(table)
    assert "| w1 | hidlr-diag | +10.0% (2/1) | 10.0% | no |" in lines
    assert "hidlr-diag, paired: within 2% on 0 of 1 workloads." in lines
    assert paired_start_rate_lines({}) == [] and paired_start_rate_lines(None) == []
