"""Replicas sharing a data dir that start at the same moment agree on one token signing key
(registry.app.load_or_create_shared): none fails, and each loads the key the first made."""

from __future__ import annotations

import multiprocessing

from registry.app import load_or_create_shared

PROCESSES = 4
ROUNDS = 10


def _load(directory, algorithm, barrier, results):
    barrier.wait(timeout=30)
    try:
        key = load_or_create_shared(directory / "key.pem", directory / "cert.pem", algorithm,
                                    "tollgate")
        results.put(key.kid)
    except Exception as e:  # noqa: BLE001 - reported to the test
        results.put(f"{type(e).__name__}: {e}")


def test_replicas_starting_at_once_share_one_signing_key(tmp_path):
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        directory = tmp_path / str(round_)
        algorithm = "RS256" if round_ % 2 else "ES256"
        barrier, results = context.Barrier(PROCESSES), context.Queue()
        processes = [context.Process(target=_load, args=(directory, algorithm, barrier, results))
                     for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        kids = [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(30)
        assert len(set(kids)) == 1, kids
        # and a later start loads the same pair
        assert load_or_create_shared(directory / "key.pem", directory / "cert.pem", algorithm,
                                     "tollgate").kid == kids[0]
        assert (directory / "key.pem").stat().st_mode & 0o777 == 0o600
