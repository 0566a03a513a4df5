"""The rollback journal against a plain in-memory model of a file."""

from __future__ import annotations

import os

import numpy as np

from deepmd_like.data import journal


def _random_ops(overlay, model, rng, n_ops=60):
    for _ in range(n_ops):
        kind = rng.integers(3)
        if kind == 0:  # write somewhere, possibly past the end
            start = int(rng.integers(0, len(model) + 9000))
            data = rng.integers(0, 256, int(rng.integers(1, 10000))).astype(np.uint8)
            overlay.seek(start)
            overlay.write(data.tobytes())
            if start > len(model):
                model.extend(bytes(start - len(model)))
            model[start : start + len(data)] = data.tobytes()
        elif kind == 1:  # truncate or extend
            size = int(rng.integers(0, len(model) + 5000))
            overlay.truncate(size)
            del model[size:]
            model.extend(bytes(size - len(model)))
        else:  # read a range and compare
            start = int(rng.integers(0, len(model) + 10))
            length = int(rng.integers(0, 12000))
            overlay.seek(start)
            buffer = bytearray(length)
            got = overlay.readinto(buffer)
            assert bytes(buffer[:got]) == bytes(model[start : start + length])


def test_overlay_matches_model_and_commit_publishes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "f.bin"
    original = rng.integers(0, 256, 50_000).astype(np.uint8).tobytes()
    path.write_bytes(original)
    for _ in range(5):
        before = path.read_bytes()
        overlay = journal.OverlayFile(path)
        model = bytearray(before)
        _random_ops(overlay, model, rng)
        assert path.read_bytes() == before  # nothing touched before commit
        journal.commit(overlay)
        overlay.close()
        assert path.read_bytes() == bytes(model)
        assert not journal.journal_path(path).exists()


def test_recover_restores_previous_bytes(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    path = tmp_path / "f.bin"
    before = rng.integers(0, 256, 30_000).astype(np.uint8).tobytes()
    path.write_bytes(before)
    overlay = journal.OverlayFile(path)
    _random_ops(overlay, bytearray(before), rng)
    for page in (1, 3, 5, 7, 9):  # make sure several pages are dirty
        overlay.seek(page * journal.PAGE + 100)
        overlay.write(b"new bytes")

    # Die after publishing a few pages: the journal stays behind.
    real_pwrite, calls = os.pwrite, [0]

    class Killed(Exception):
        pass

    def pwrite(fd, data, offset):
        if calls[0] == 3:
            raise Killed
        calls[0] += 1
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(journal.os, "pwrite", pwrite)
    try:
        journal.commit(overlay)
    except Killed:
        pass
    monkeypatch.setattr(journal.os, "pwrite", real_pwrite)
    overlay.close()
    assert journal.journal_path(path).exists()
    assert path.read_bytes() != before  # partly overwritten

    # A reader sees the previous state without changing anything.
    view = journal.RollbackView(path, journal.read_journal(path))
    assert view.read() == before
    view.close()
    assert journal.recover(path)
    assert path.read_bytes() == before
    assert not journal.journal_path(path).exists()


def test_torn_journal_is_discarded(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10_000)
    journal.journal_path(path).write_bytes(b"DPLJRNL1" + b"\0" * 20)  # torn
    assert journal.read_journal(path) is None
    assert not journal.recover(path)
    assert path.read_bytes() == b"x" * 10_000
    assert not journal.journal_path(path).exists()
