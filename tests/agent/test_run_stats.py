"""RunStats.score: which windows count towards the accuracy, and the bound on what is kept."""

from agent.run_stats import MAX_UNSCORED_LABELS, RunStats
from tests.agent.helpers import default_entry


def test_score_counts_the_models_classes_and_keeps_other_labels_apart_and_bounded() -> None:
    entry = default_entry()
    stats = RunStats()
    stats.score(entry.labels[0], entry, 0)  # right
    stats.score(entry.labels[0], entry, 1)  # wrong
    for i in range(200):  # a CSV may name any label: every window counted, the keys bounded
        stats.score(f"made-up-{i}", entry, 0)
    assert (stats.labelled, stats.correct, stats.accuracy) == (2, 1, 0.5)
    stats.score("(more labels)", entry, 0)  # a label of any text: never mixed with the rest
    assert stats.unscored_windows == 201
    assert len(stats.unscored) == MAX_UNSCORED_LABELS
    assert stats.unscored_more == 201 - MAX_UNSCORED_LABELS
