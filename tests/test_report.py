"""`archstat report`: the committed reports/ regenerate byte for byte, and the report set
is data that a new analysis joins with one entry."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from archstat.cli import main
from archstat.render.reports import REPORTS, Report, build_reports, readme, write_reports

COMMITTED = Path(__file__).resolve().parent.parent / "reports"


@pytest.mark.slow  # analyzes every model the reports cover
def test_committed_reports_are_up_to_date(tmp_path) -> None:
    """Fails when a change moves a number without `archstat report` being rerun."""
    written = write_reports(tmp_path)
    fresh = {p.name: p.read_bytes() for p in written}
    committed = {p.name: p.read_bytes() for p in COMMITTED.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"reports/ is stale, run `archstat report`: {stale}"


def test_issue_file_set_and_contents() -> None:
    names = {r.filename for r in REPORTS}
    for model in ("alexnet", "vgg16", "googlenet", "resnet50"):
        assert {f"{model}_layers.csv", f"{model}_lecture.csv"} <= names
    assert {"googlenet_paper.csv", "compare_googlenet_vgg16.csv", "compare_zoo.csv"} <= names
    # issue 12: the families after ResNet
    assert {"densenet121_layers.csv", "se_resnet50_layers.csv", "efficientnet_b0_layers.csv",
            "bottleneck_densenet121.csv", "bottleneck_efficientnet_b0.csv"} <= names
    zoo = list(csv.DictReader(io.StringIO((COMMITTED / "compare_zoo.csv").read_text())))
    from archstat.zoo import list_models

    assert [r["model"] for r in zoo] == list_models()
    vgg16 = next(r for r in zoo if r["model"] == "vgg16")
    assert int(vgg16["params"]) == 138_357_544 and int(vgg16["flops"]) == 15_470_264_320


def test_a_new_report_is_one_entry(tmp_path) -> None:
    extra = Report("alexnet_fc.csv", lambda analyze: analyze("alexnet").layers.query(
        "type == 'Linear'")[["name", "params"]].to_csv(index=False),
        "alexnet's fc layers", "`name`, `params` of each fc layer.")
    files = build_reports([REPORTS[0], extra])
    assert files["alexnet_fc.csv"].splitlines()[1] == "classifier.1,37752832"
    assert "| `alexnet_fc.csv` | alexnet's fc layers |" in files["README.md"]
    assert "`alexnet_fc.csv`:\n\n`name`, `params` of each fc layer." in readme([extra])
    write_reports(tmp_path / "new" / "dir", [extra])
    assert (tmp_path / "new" / "dir" / "README.md").exists()


def test_cli_writes_reports_and_fails_cleanly(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["report", "--out", str(blocker / "reports")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archstat: error: cannot create report directory") and err.count(
        "\n") == 1
