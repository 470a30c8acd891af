"""Every bug the simulator found, as a regression test with its seed.

Each seed failed on the engine commit named in its case, with the violation quoted, and passes
once the engine was fixed. A seed replays its scenario only while the simulator draws its
decisions the same way: after a change to the simulator's draws, find the seed again against
the named engine commit (``git worktree add <dir> <commit>`` and a campaign there). That is
why each case also names its scripted twin: an engine-level test of the same bug that does not
depend on the simulator's draws (each fails with its fix reverted).
"""

import os

import pytest

from fastraft.sim import SimOptions, run_seed

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTED = {
    230: "core/test_paper_7_compaction.py::test_7_no_apply_while_a_snapshot_is_installed",
    247: "core/test_paper_7_compaction.py::test_7_no_apply_while_a_snapshot_is_installed",
    812: "core/test_paper_7_compaction.py::test_7_discarded_log_is_no_longer_durable",
    954: "core/test_edge_cases.py::test_start_in_the_last_log_term_when_the_saved_vote_is_older",
    3866: "core/test_edge_cases.py::test_initialize_again_after_a_crash_kept_only_its_vote",
    58810: "core/test_liveness_rejections.py::"
           "test_rejection_at_the_match_index_is_not_answered_with_a_resend",
    405969: "core/test_paper_5_4_safety.py::"
            "test_5_3_stale_leader_may_truncate_an_entry_committed_in_a_later_term",
    404505: "core/test_paper_6_membership.py::"
            "test_4_1_a_voter_that_missed_its_promotion_still_votes_for_the_only_electable_log",
    92360: "sim/test_sim_liveness.py::"
           "test_timing_rule_changes_only_the_election_timeouts_of_profiles_that_break_it",
}

CASES = [
    # (seed, options, engine commit that failed, what the simulator reported there)
    (230, SimOptions(steps=2000), "c873a40",
     "command-contract: node 4 ApplyEntries [64, 65) but the state machine is at 73: the engine "
     "emitted ApplyEntries for entries below a snapshot it was installing (fixed in 3565bcb)"),
    (247, SimOptions(steps=2000), "c873a40",
     "command-contract: node 2 ApplyEntries [25, 38) but the state machine is at 41 (the same "
     "bug as seed 230, reached through a restart)"),
    (812, SimOptions(steps=2000), "c873a40",
     "durable-before-send: node 3 acknowledges entries up to 93, durable only up to 92: a "
     "snapshot that replaced the log left the engine's flushed index above the new log, so new "
     "entries were acknowledged before their flush (fixed in 1c07408)"),
    (954, SimOptions(steps=2000), "e3d2bed",
     "vote-regressed: a snapshot of term 4 became durable before the SaveVote of term 4; after "
     "a crash the node restarted in term 3, below its own log's last term (fixed: the engine "
     "starts in the last log term when its saved vote is older)"),
    # its profile drew 60-210 ms election timeouts, which the timing rule (profile.py) now
    # raises: forcing them keeps the draws, and the run, of the engine that failed
    (3866, SimOptions(steps=2000, config=(("heartbeat_interval_ms", 10),
                                          ("election_timeout_min_ms", 60),
                                          ("election_timeout_max_ms", 210))), "e3d2bed",
     "liveness: initialize's vote was durable but its membership entry was not; every later "
     "initialize was refused as 'already initialized' and the cluster never formed (fixed: a "
     "saved vote alone does not make a node initialized)"),
    (405969, SimOptions(steps=2000), "5451690",
     "committed-truncated: node 5 truncates from 3, committed up to 4: a false alarm of the "
     "checker, not an engine bug. Learner 5, still in term 8, took the AppendEntries of term "
     "10's leader (sent before that leader crashed, held while node 5 was paused) after term "
     "11 had committed entry 6/3; Leader Completeness covers only leaders of term 11 and later "
     "(Raft §5.4.1), so the truncation is Raft's (§5.3). The checker now flags a truncated "
     "committed entry only in its committing term or a later one"),
    (404505, SimOptions(steps=2000), "5451690",
     "liveness: no write committed within 30 s after the faults ended: in C_old,new = "
     "{1,2,3}/{2,5} only node 2's log could win C_old, and node 5, which had missed the "
     "configurations making node 2 a voter, dropped node 2's vote requests as a learner's "
     "(fixed: a member whose log is ahead of this node's gets an answer, thesis §4.1)"),
]


@pytest.mark.parametrize("seed,opts,commit,what", CASES, ids=[f"seed-{c[0]}" for c in CASES])
def test_found_bug_stays_fixed(seed, opts, commit, what):
    r = run_seed(seed, opts)
    assert r.violation is None, f"seed {seed} fails again ({what}): {r.violation}"
    assert r.recovered_s is not None


@pytest.mark.parametrize("seed", sorted(SCRIPTED))
def test_every_seed_case_has_a_scripted_twin(seed):
    assert seed in {c[0] for c in CASES} or seed in (58810, 92360)  # those two: test_sim_liveness
    path, name = SCRIPTED[seed].split("::")
    with open(os.path.join(TESTS, path)) as f:
        assert f"def {name}(" in f.read(), SCRIPTED[seed]
