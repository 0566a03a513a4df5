"""A writer killed with SIGKILL at any moment leaves the previous file readable.

Child processes append frames whose values encode their index (positions of
frame i all equal i, energy -i), so any torn or mixed-up write shows up as a
wrong value. Two kinds of kill: at random moments of a busy append loop, and
at a chosen page in the middle of publishing a commit (the worst moment).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from deepmd_like.data import Dataset, DatasetWriter
from deepmd_like.data.journal import journal_path
from deepmd_like.errors import UserError

N_ATOMS = 16

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from deepmd_like.data import journal
    from deepmd_like.data.writer import DatasetWriter

    path, seed, crash_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    n_atoms = {n_atoms}
    rng = np.random.default_rng(seed)

    def frames(start, count):
        index = np.arange(start, start + count, dtype=float)
        positions = np.broadcast_to(index[:, None, None], (count, n_atoms, 3))
        return dict(positions=positions, energy=-index, forces=0.5 * positions,
                    cell=np.broadcast_to(np.eye(3) * 50, (count, 3, 3)))

    if crash_after >= 0:
        # Die in the middle of publishing a commit, after some page writes.
        real_pwrite, calls = os.pwrite, [0]
        def pwrite(fd, data, offset):
            if journal_file_exists():
                if calls[0] >= crash_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                calls[0] += 1
            return real_pwrite(fd, data, offset)
        def journal_file_exists():
            return journal.journal_path(path).exists()
        journal.os.pwrite = pwrite

    writer = DatasetWriter(path)
    import h5py
    with h5py.File(path, "r", locking=False) as h5:
        n = h5["systems/traj/positions"].shape[0] if "systems/traj" in h5 else 0
    if n == 0:
        writer.add_system("traj", np.full(n_atoms, 18), pbc=(True,) * 3,
                          **frames(0, 1))
        n = 1
    print("ready", n, flush=True)
    while True:
        count = int(rng.integers(1, 40))
        writer.append_frames("traj", **frames(n, count))
        n += count
    """
).format(n_atoms=N_ATOMS)


def _verify(path) -> int:
    dataset = Dataset(path)
    data = dataset.read_system("traj")
    n = dataset.systems[0].n_frames
    index = np.arange(n, dtype=float)
    np.testing.assert_array_equal(data["positions"], np.broadcast_to(
        index[:, None, None], (n, N_ATOMS, 3)))
    np.testing.assert_array_equal(data["energy"], -index)
    np.testing.assert_array_equal(data["forces"], 0.5 * data["positions"])
    assert data["has_forces"].all()
    dataset.close()
    return n


def _run_child(script, path, seed, crash_after, kill_after=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, str(script), str(path), str(seed), str(crash_after)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    line = process.stdout.readline()
    if kill_after is not None:
        assert line.startswith("ready"), process.stderr.read()
        time.sleep(kill_after)
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    return int(line.split()[1]) if line.startswith("ready") else None


def test_sigkill_at_random_moments(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / "traj.h5"
    rng = np.random.default_rng(0)
    counts = []
    for attempt in range(12):
        _run_child(script, path, attempt, -1, kill_after=float(rng.uniform(0, 0.4)))
        # A reader sees a consistent file whether or not a journal was left.
        counts.append(_verify(path))
    assert counts == sorted(counts) and counts[-1] > counts[0]
    # The next writer undoes any unfinished commit and carries on.
    with DatasetWriter(path) as writer:
        assert not journal_path(path).exists()
        n = counts[-1]
        writer.append_frames(
            "traj", np.full((1, N_ATOMS, 3), float(n)), energy=[-float(n)],
            forces=np.full((1, N_ATOMS, 3), 0.5 * n), cell=np.eye(3)[None] * 50,
        )
    assert _verify(path) == counts[-1] + 1


@pytest.mark.parametrize("crash_after", [0, 1, 3, 7, 20])
def test_sigkill_in_the_middle_of_a_commit(tmp_path, crash_after):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / "traj.h5"
    # Build some history first, killed at a quiet moment.
    _run_child(script, path, 1, -1, kill_after=0.3)
    before = _verify(path)
    # Now die while publishing: the data file is partly overwritten.
    _run_child(script, path, 2, crash_after)
    assert journal_path(path).exists()
    assert _verify(path) >= before  # the state before the torn commit
    with DatasetWriter(path):
        pass  # recovery on open
    assert not journal_path(path).exists()
    assert _verify(path) >= before


def test_second_writer_fails_and_first_is_intact(tmp_path):
    script = tmp_path / "hold.py"
    script.write_text(textwrap.dedent(
        """
        import sys, time
        import numpy as np
        from deepmd_like.data.writer import DatasetWriter
        with DatasetWriter(sys.argv[1]) as writer:
            h2 = np.zeros((2, 2, 3)) + [[0, 0, 0], [0, 0, 0.74]]
            writer.add_system("a", [1, 1], h2, energy=[-1.0, -1.1])
            print("holding", flush=True)
            sys.stdin.readline()
            writer.append_frames("a", np.zeros((1, 2, 3)) + [[0, 0, 0], [0, 0, 0.75]],
                                 energy=[-1.2])
        """
    ))
    path = tmp_path / "shared.h5"
    process = subprocess.Popen([sys.executable, str(script), str(path)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "holding"
    with pytest.raises(UserError, match="being written by another process"):
        DatasetWriter(path)
    process.stdin.write("go\n")
    process.stdin.flush()
    assert process.wait(timeout=60) == 0
    data = Dataset(path).read_system("a")
    np.testing.assert_array_equal(data["energy"], [-1.0, -1.1, -1.2])
    # Once the first writer is gone, a second may write.
    with DatasetWriter(path) as writer:
        writer.append_frames("a", np.zeros((1, 2, 3)), energy=[-1.3])
    assert Dataset(path).systems[0].n_frames == 4
