"""Issue 35: quickstart validates everything before it writes anything (validation before any write)."""
import pytest

from plm_app.cli import main


@pytest.mark.parametrize("flag, value, key", [("--lr", "nan", "--lr"), ("--steps", "0", "--steps"),
                                              ("--batch-size", "-1", "--batch-size"), ("--lr", "inf", "--lr")])
def test_validation_before_any_write_quickstart_bad_training_values(tmp_path, capsys, flag, value, key):
    run = tmp_path / "qs"
    assert main(["quickstart", "--reference", "none", flag, value, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert not run.exists()  # no quickstart.json: the corrected command is a fresh start, not "already holds a run"
