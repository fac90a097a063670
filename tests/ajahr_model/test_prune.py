"""Set-aside checkpoints: listed with their sizes, deleted only when asked, live ones never."""

from __future__ import annotations

from ajahr_model.prune import find_set_aside, main


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
