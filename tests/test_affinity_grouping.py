"""The grouping suggestion above 10 tasks (greedy merging, scored incrementally from block sums) against the greedy
written out the slow way: every candidate merge scored by the full partition score."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from polyskill.mtl.affinity import partition_scores, suggest_groups


def greedy_by_full_scores(a: np.ndarray, limit: int) -> np.ndarray:
    """Merge the pair of groups whose merged partition scores highest (first pair on ties) while the score rises
    or while there are more than `limit` groups."""
    labels = np.arange(len(a))
    while True:
        current = partition_scores(labels[None], a)[0]
        best, best_labels = -np.inf, None
        for g, h in itertools.combinations(np.unique(labels), 2):
            trial = np.where(labels == h, g, labels)
            score = partition_scores(trial[None], a)[0]
            if score > best:
                best, best_labels = score, trial
        if best_labels is None or (best <= current and len(np.unique(labels)) <= limit):
            return labels
        labels = best_labels


@pytest.mark.parametrize("case", range(12))
def test_greedy_grouping_matches_the_full_score_search(case):
    rng = np.random.default_rng(case)
    n = 11 + case % 5
    a = rng.normal(size=(n, n))
    if case % 3 == 0:
        a = a + a.T
    limit = n if case % 2 == 0 else int(rng.integers(1, n))
    tasks = [f"t{i}" for i in range(n)]
    expected: dict[int, list[str]] = {}
    for task, label in zip(tasks, greedy_by_full_scores(a, limit).tolist(), strict=True):
        expected.setdefault(label, []).append(task)
    groups = suggest_groups(a, tasks, max_groups=limit)
    assert groups == list(expected.values())
    assert len(groups) <= limit


def test_139_tasks_are_grouped_within_their_planted_blocks():
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(5), 28)[:139]
    a = np.where(labels[:, None] == labels[None, :], 1.0, -1.0) + 0.1 * rng.normal(size=(139, 139))
    groups = suggest_groups(a, [str(i) for i in range(139)])
    assert sorted(int(t) for g in groups for t in g) == list(range(139))
    assert all(len({labels[int(t)] for t in g}) == 1 for g in groups)  # no group mixes two blocks
    assert all(len(g) >= 2 for g in groups)  # and no task is left alone: it gains from any block-mate
