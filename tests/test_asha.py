"""Successive halving in the search ([screen] rungs, eta): the cheaper rungs
train every rule that passed screening, and only the rules whose score is
among the top 1/eta of every score of that rung so far go on (ASHA's
promotion rule); the results do not depend on the workers, and a run killed
mid-generation resumes with the same promotions."""

from __future__ import annotations

import dataclasses
import sqlite3
import tomllib
from collections import defaultdict

import pytest

from rulec import search as S
from rulec.search.hurdles import final_rung, promotion_bar, rung_key, score_rule

from .test_search import DELTA, FAST, rows

RUNGS = dataclasses.replace(FAST, screen=dataclasses.replace(FAST.screen, rungs=(4, 12)))
EVOLVE = S.Config(strategy="evolve", seed=5, generation=24, population=24, tournament=4,
                  start=(DELTA,))


def rung_rows(db: str) -> list[tuple]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute("SELECT idx, rung, score, loss FROM rungs ORDER BY idx, "
                                  "rung").fetchall()
    finally:
        connection.close()


def test_the_promotion_bar_is_the_top_one_in_eta_ranked_by_score_then_loss():
    def bar(pairs, eta):
        return promotion_bar([rung_key(*p) for p in pairs], eta)

    assert bar([(0.5, .2), (1.0, .1), (0.75, .3), (0.25, .2), (0.5, .1), (0, .4)], 3) \
        == (0.75, -.3)  # the 2nd best of 6
    # scores are few accuracies, mostly tied: the loss ranks the tied, the
    # lower first, and a missing or infinite loss last
    tied = [(0.5, .3), (0.5, .1), (0.5, None), (0.5, .2), (0.5, float("inf")), (0.5, .25)]
    assert bar(tied, 3) == (0.5, -.2)
    assert sum(rung_key(*p) >= bar(tied, 3) for p in tied) == 2
    assert bar([(1.0, .1), (1.0, .1), (1.0, .1), (0.0, .1)], 4) == (1.0, -.1)  # exact ties
    assert bar([(0.3, None)], 3) == rung_key(0.3, None)  # the first rule of a run goes up


def test_each_rung_has_its_own_seeds_more_of_them_up_the_ladder():
    screen = dataclasses.replace(FAST.screen, seeds=9, rungs=(4, 12), eta=3)
    assert [screen.rung_seeds(k) for k in range(2)] == [range(100, 101), range(200, 203)]
    used = set(range(screen.seeds)) | set(screen.rung_seeds(0)) | set(screen.rung_seeds(1))
    assert len(used) == 9 + 1 + 3 and max(used) < 1000  # never the untouched seeds


def test_rung_settings_are_checked_round_trip_and_stay_out_of_old_run_keys():
    assert "rungs" not in S.Settings().to_dict()["screen"]  # old runs keep their keys
    assert S.Settings().key() != dataclasses.replace(
        S.Settings(), screen=dataclasses.replace(S.Settings().screen, rungs=(5,))).key()
    text = S.space.settings_to_toml(RUNGS)
    assert "rungs = [4, 12]" in text and "eta = 3" in text
    assert S.settings_from_toml(tomllib.loads(text)) == RUNGS
    assert S.Settings.from_dict(RUNGS.to_dict()) == RUNGS
    for rungs, eta, message in (((12, 4), 3, "go up"), ((4, 60), 3, "fewer than epochs"),
                                ((0,), 3, "whole numbers from 1"),
                                ((4,), 1, r"eta \(--eta\) must be"),
                                (tuple(range(1, 10)), 3, "at most 8")):
        with pytest.raises(S.SpaceError, match=message):
            dataclasses.replace(FAST.screen, rungs=rungs, eta=eta).check()
    with pytest.raises(S.SpaceError, match=r"\[screen\] rungs"):
        S.settings_from_toml({"screen": {"rungs": 30}})


def test_a_rung_trains_its_epochs_on_its_seeds_and_scores_the_mean_accuracy():
    ev = S.Evaluator(dataclasses.replace(RUNGS, screen=dataclasses.replace(
        RUNGS.screen, rungs=(1, 40))))
    record = ev.screen(DELTA)
    wire = {"passed": record["passed"], "failure": None, "timings": {}, "rungs": []}
    ev.rung(DELTA, wire, 0)
    ev.rung(DELTA, wire, 1)
    short, long = wire["rungs"]
    # one epoch cannot hold OR for `hold` epochs; forty can, on the rung's seed 200
    assert short[0] < 1.0 and long[0] == 1.0
    assert short[1] > long[1] > 0  # the mean last loss of the rung's seeds
    assert set(wire["timings"]) == {"rung1", "rung2"}


def test_only_the_top_third_of_each_rung_so_far_goes_up_whatever_the_workers(tmp_path):
    one, two = str(tmp_path / "one.sqlite"), str(tmp_path / "two.sqlite")
    S.search(RUNGS, EVOLVE, one, rules=120, jobs=1)
    S.search(RUNGS, EVOLVE, two, rules=120, jobs=2, batch=5)
    assert rows(one) == rows(two) and rung_rows(one) == rung_rows(two)

    connection = sqlite3.connect(one)
    stored = {idx: (generation, passed, failure) for idx, generation, passed, failure in
              connection.execute("SELECT idx, generation, passed, failure FROM rules "
                                 "WHERE duplicate IS NULL")}
    connection.close()
    scores = defaultdict(dict)  # rung -> idx -> its key there
    for idx, rung, score, loss in rung_rows(one):
        scores[rung][idx] = rung_key(score, loss)
    screened = [i for i, (_, passed, failure) in stored.items() if passed >= 4
                and not (passed == 4 and failure and not failure.startswith("not-promoted"))]
    assert sorted(scores[0]) == sorted(screened)  # every rule past screening ran rung 1
    assert scores[1] and len(scores[1]) <= len(scores[0]) / 2  # not everyone went up
    for rung in (0, 1):
        for idx, score in scores[rung].items():
            generation, passed, failure = stored[idx]
            pool = [s for i, s in scores[rung].items() if stored[i][0] <= generation]
            went_up = passed > 4 + rung
            assert went_up == (score >= promotion_bar(pool, 3)), (idx, rung, score, failure)
            if not went_up:
                assert failure.startswith(f"not-promoted: rung {rung + 1} ")
    went_on = {i for i, (_, passed, _) in stored.items() if passed > 4}
    assert went_on == set(scores[1]) and went_on  # rung 2 is run by those that went up


def test_a_run_killed_mid_generation_resumes_with_the_same_promotions(tmp_path):
    straight, killed = str(tmp_path / "straight.sqlite"), str(tmp_path / "killed.sqlite")
    S.search(RUNGS, EVOLVE, straight, rules=96, jobs=1)
    S.search(RUNGS, EVOLVE, killed, rules=96, jobs=1)
    # what a coordinator killed during the last generation leaves: some of its
    # batches stored (each one transaction), the rest not
    connection = sqlite3.connect(killed)
    lost = [idx for (idx,) in connection.execute(
        "SELECT idx FROM rules WHERE generation = 3 AND idx % 3 != 0")]
    assert any(r[0] in lost for r in rung_rows(killed))
    for table in ("rules", "results", "rungs"):
        connection.execute(f"DELETE FROM {table} WHERE idx IN ({','.join(map(str, lost))})")
    connection.commit()
    connection.close()
    again = S.search(RUNGS, EVOLVE, killed, rules=96, jobs=2, batch=3)
    assert again.new == len(lost)
    assert rows(killed) == rows(straight) and rung_rows(killed) == rung_rows(straight)


def test_score_judges_a_rule_as_one_that_went_up_every_rung():
    with_rungs = score_rule(DELTA, RUNGS)
    without = score_rule(DELTA, FAST)
    assert with_rungs["hurdles"] == without["hurdles"] == S.hurdle_names(final_rung(RUNGS))
    assert with_rungs["passed"] == without["passed"] and with_rungs["failure"] is None
    assert "rung1" in S.hurdle_names(RUNGS)
