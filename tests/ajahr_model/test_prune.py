"""Set-aside checkpoints: never overwritten, listed with their sizes, deleted only when asked,
live ones never."""

from __future__ import annotations

from ajahr_model.prune import main
from ajahr_model.set_aside import find_set_aside, set_aside


def test_set_aside_checkpoints_are_listed_and_deleted_only_on_request(tmp_path, capsys):
    models = tmp_path / "models"
    (models / "ajahr").mkdir(parents=True)
    (models / "seed_study" / "seed_1" / "hmr2").mkdir(parents=True)
    live = models / "ajahr" / "checkpoint.pt"
    live.write_bytes(b"x" * 10)
    aside = [
        models / "ajahr" / "checkpoint.settings-2436a4b253bc.pt",
        models / "ajahr" / "checkpoint.settings-2436a4b253bc-1.pt",
        models / "seed_study" / "seed_1" / "hmr2" / "checkpoint.unreadable.pt",
    ]
    for path in aside:
        path.write_bytes(b"y" * 1000)
    (models / "ajahr" / "checkpoint.pt.tmp").write_bytes(b"z")  # a half-written one: not ours to judge
    assert sorted(f.path for f in find_set_aside([models])) == sorted(aside)
    assert main([str(models)]) == 0
    out = capsys.readouterr().out
    assert "3 set-aside checkpoints" in out and "--delete removes them" in out
    assert all(path.exists() for path in aside)  # listing deletes nothing
    assert main([str(models), "--delete"]) == 0
    assert not any(path.exists() for path in aside) and live.exists()
    assert (models / "ajahr" / "checkpoint.pt.tmp").exists()
    assert main([str(tmp_path / "nope")]) == 2


def test_setting_aside_never_overwrites_an_earlier_set_aside_file(tmp_path):
    # The same settings can be set aside twice (a run of them resumed, set aside again later):
    # both runs are kept, the second numbered, and the pruner lists both.
    first, second, third = (tmp_path / f"run{i}.pt" for i in range(3))
    for i, path in enumerate((first, second, third)):
        path.write_bytes(bytes([i]))
    live = tmp_path / "checkpoint.pt"
    kept = []
    for path in (first, second, third):
        path.rename(live)
        kept.append(set_aside(live, "settings-abc123"))
    assert [p.name for p in kept] == [
        "checkpoint.settings-abc123.pt", "checkpoint.settings-abc123-1.pt", "checkpoint.settings-abc123-2.pt",
    ]  # fmt: skip
    assert [p.read_bytes() for p in kept] == [b"\x00", b"\x01", b"\x02"] and not live.exists()
    assert sorted(f.path for f in find_set_aside([tmp_path])) == sorted(kept)
