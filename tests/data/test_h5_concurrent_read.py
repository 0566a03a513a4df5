"""Reading a file while another process appends to it.

The appender writes frames whose values encode their index (positions of frame
i all equal i, energy -i, forces 0.5 i), so a reader that saw half of a commit
would find arrays of different lengths or wrong values. Every open must give a
consistent, committed state or a one-line "being written" error, never an
HDF5 traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np

from deepmd_like.cli import main
from deepmd_like.data import Dataset, DatasetWriter
from deepmd_like.errors import UserError

N_ATOMS = 400  # one frame per HDF5 chunk: the chunk index grows fast
# Energies are stored 1024 frames to a chunk; start near the second chunk.
FIRST = 1000

APPENDER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from deepmd_like.data.writer import DatasetWriter

    path, seconds = sys.argv[1], float(sys.argv[2])
    rng = np.random.default_rng(1)
    writer = DatasetWriter(path, sync=False)
    start = {first}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        count = int(rng.integers(1, 8))
        index = np.arange(start, start + count, dtype=float)
        positions = np.broadcast_to(index[:, None, None], (count, {n_atoms}, 3))
        writer.append_frames("traj", positions, energy=-index,
                             forces=0.5 * positions)
        start += count
    writer.close()
    print(start)
    """
).format(n_atoms=N_ATOMS, first=FIRST)


READER = textwrap.dedent(
    """
    import collections, json, sys, time
    import numpy as np
    from deepmd_like.data import Dataset
    from deepmd_like.errors import UserError

    outcomes, sizes = collections.Counter(), []
    print("ready", flush=True)
    sys.stdin.readline()  # the appender has started
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        try:
            dataset = Dataset(sys.argv[1])
            n = len(dataset)
            energy = dataset.read_frames("traj", n - 2)["energy"]
            dataset.close()
            assert energy.tolist() == [-(n - 2.0), -(n - 1.0)], (n, energy)
            outcomes["ok"] += 1
            sizes.append(n)
        except UserError as err:
            busy = "is being written by another process" in str(err)
            outcomes["busy" if busy else "UserError: " + str(err)[-80:]] += 1
        except Exception as err:
            outcomes[type(err).__name__ + ": " + str(err)[-80:]] += 1
    print(json.dumps({"outcomes": outcomes, "sizes": sizes}))
    """
)


def _first_frames(path):
    index = np.arange(FIRST, dtype=float)
    positions = np.broadcast_to(index[:, None, None], (FIRST, N_ATOMS, 3))
    with DatasetWriter(path) as writer:
        writer.add_system("traj", np.full(N_ATOMS, 18), positions, energy=-index,
                          forces=0.5 * positions)


def _consistent(path) -> int:
    dataset = Dataset(path)
    data = dataset.read_system("traj")
    n = len(dataset)
    index = np.arange(n, dtype=float)
    assert data["positions"].shape == (n, N_ATOMS, 3)
    np.testing.assert_array_equal(data["energy"], -index)
    np.testing.assert_array_equal(data["positions"][:, 0, 0], index)
    np.testing.assert_array_equal(data["forces"][:, -1, 2], 0.5 * index)
    # A frame appended after the open is not seen; earlier ones read right.
    frame = dataset[n - 1]
    assert float(frame["energy"]) == -(n - 1)
    dataset.close()
    return n


def test_reader_sees_whole_commits_while_a_writer_appends(tmp_path, capsys):
    path = tmp_path / "rw.h5"
    _first_frames(path)
    # The reader imports torch first (seconds); start appending once it is
    # ready, so that the two overlap.
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), "5"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert reader.stdout.readline().strip() == "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(path), "6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    reader.stdin.write("go\n")
    reader.stdin.flush()
    seen, busy, cli_runs = [], 0, 0
    try:
        deadline = time.monotonic() + 5.5
        while time.monotonic() < deadline and child.poll() is None:
            for _ in range(5):
                # Opening reads every system's metadata: the moment a torn
                # commit would show.
                try:
                    opened = Dataset(path)
                    opened.read_frames("traj", len(opened) - 1)
                    opened.close()
                except UserError as err:
                    assert "is being written by another process" in str(err)
                    busy += 1
            try:
                seen.append(_consistent(path))
            except UserError as err:
                assert "is being written by another process" in str(err)
                busy += 1
            capsys.readouterr()
            code = main(["data", "info", str(path)])
            captured = capsys.readouterr()
            assert "Traceback" not in captured.err
            assert code == 0 or (
                code == 2 and "being written" in captured.err
                and len(captured.err.strip().splitlines()) == 1
            ), captured.err
            cli_runs += 1
    finally:
        read_out, read_err = reader.communicate(timeout=60)
        read_out = read_out.strip().splitlines()[-1]
        out, err = child.communicate(timeout=60)
    assert reader.returncode == 0, read_err
    report = json.loads(read_out)
    outcomes = report["outcomes"]
    assert set(outcomes) <= {"ok", "busy"}, outcomes
    assert outcomes["ok"] >= 20 and report["sizes"] == sorted(report["sizes"])
    assert report["sizes"][-1] > report["sizes"][0], (outcomes, seen)
    assert child.returncode == 0, err
    total = int(out.strip())
    # The readers really overlapped the appends and saw the file grow.
    assert len(seen) >= 2 and cli_runs >= 2, (seen, busy)
    assert seen == sorted(seen)
    assert _consistent(path) == total
