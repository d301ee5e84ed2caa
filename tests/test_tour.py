"""docs/tour.ipynb, the lecture's story told with archstat (issue 16), executed as CI
would run it: nbclient starts an IPython kernel of this very Python, runs every cell
and keeps the outputs, which are checked against figures computed here independently
(layer arithmetic, ``p.numel()`` of the built models). The committed file carries no
outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

import archstat

# an executed notebook: CI runs it, `-m "not slow"` leaves it out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "docs" / "tour.ipynb"

#: Cell id -> the result type its last expression displays (each shows as a table once
#: the type has ``_repr_html_``).
DISPLAYS = {
    "alexnet-table": "LectureTable",
    "vgg-table": "PaperTable",
    "vgg-vs-alexnet": "Comparison",
    "googlenet-stem": "Comparison",
    "googlenet-bottleneck": "BottleneckReport",
    "resnet-stages": "PaperTable",
    "resnet-bottleneck": "BottleneckReport",
    "families": "Comparison",
    "se-overhead": "BottleneckReport",
}

#: Appended to the executed copy only: where the kernel's Python and archstat come from.
PROBE = ("import json, sys, archstat\n"
         "print(json.dumps({'executable': sys.executable, 'prefix': sys.prefix, "
         "'archstat': archstat.__file__}))")


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The tour run once by nbclient; cell id -> executed cell (the probe as "probe")."""
    home = tmp_path_factory.mktemp("jupyter")
    # The kernel named "python3" is this interpreter: a kernelspec written for
    # sys.executable, found first on JUPYTER_PATH, whatever else is installed (a user's
    # own python3 kernelspec would otherwise win). PYTHONPATH puts this checkout's
    # archstat first, as pytest's pythonpath does for the tests.
    write_kernel_spec(home / "kernels" / "python3")
    nb = nbformat.read(TOUR, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE, id="probe"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JUPYTER_PATH", str(home))
        env.setenv("IPYTHONDIR", str(home / "ipython"))
        env.setenv("PYTHONPATH", str(ROOT), prepend=":")
        env.setenv("MPLBACKEND", "agg")
        client = NotebookClient(nb, kernel_name="python3", timeout=120,
                                resources={"metadata": {"path": str(home)}})
        client.execute()  # raises CellExecutionError at the first cell that fails
    return {cell.id: cell for cell in nb.cells}


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def result(cell: nbformat.NotebookNode) -> dict:
    """The mime bundle of the value the cell ends with."""
    (out,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    return out.data


def params(name: str) -> int:
    """A zoo model's parameter count from the module itself (built on meta)."""
    with torch.device("meta"):
        model = archstat.get_model(name)
    return sum(p.numel() for p in model.parameters())


def test_committed_tour_has_no_outputs() -> None:
    nb = nbformat.read(TOUR, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert len(code) >= 10
    for cell in code:
        assert cell.outputs == [], f"{cell.id}: outputs committed (clear them)"
        assert cell.execution_count is None, f"{cell.id}: execution count committed"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_tour_runs_in_this_python_and_this_archstat(executed) -> None:
    probe = json.loads(stdout(executed["probe"]))
    assert probe["executable"] == sys.executable
    assert probe["prefix"] == sys.prefix
    assert Path(probe["archstat"]).resolve() == Path(archstat.__file__).resolve()


def test_every_cell_ran_without_error(executed) -> None:
    code = [cell for cell in executed.values() if cell.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    for cell in code:
        assert all(o.output_type != "error" for o in cell.outputs), cell.id
        assert all(o.get("name") != "stderr" for o in cell.outputs), (
            f"{cell.id} wrote to stderr: {[o.text for o in cell.outputs if 'text' in o]}")


def test_results_display_as_tables_where_they_can(executed) -> None:
    # Each table cell ends with the result object itself, so a notebook shows whatever
    # the type's rich display gives: HTML tables where it has _repr_html_.
    for cell_id, type_name in DISPLAYS.items():
        data = result(executed[cell_id])
        has_html = hasattr(getattr(archstat, type_name), "_repr_html_")
        assert ("text/html" in data) == has_html, cell_id
        if has_html:
            html = data["text/html"]
            assert "<table" in html and "<th" in html, cell_id
    # a pandas frame displays as a table in any case
    assert "<table" in result(executed["efficientnet"])["text/html"]


def test_alexnet_totals(executed) -> None:
    # The lecture's AlexNet (227x227, 64 filters in conv1), weights + biases per layer:
    # conv1 ... conv5 (out, in, k), then fc6 ... fc8 (out, in).
    convs = [(64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3), (256, 256, 3)]
    fcs = [(4096, 256 * 6 * 6), (4096, 4096), (1000, 4096)]
    by_layers = (sum(o * i * k * k + o for o, i, k in convs)
                 + sum(o * i + o for o, i in fcs))
    assert by_layers == params("alexnet") == 61_100_840
    text = stdout(executed["alexnet-shares"])
    assert f"AlexNet: {by_layers:,} parameters" in text
    fc_share = sum(o * i + o for o, i in fcs) / by_layers
    assert f"parameters in fc6-fc8: {fc_share:.0%}" in text
    assert "parameters in fc6-fc8: 96%" in text
    # output memory (elements, per image): conv1 and pool1, conv2 and pool2 against all
    # conv/pool/flatten/fc outputs
    outputs = [64 * 56 * 56, 64 * 27 * 27, 192 * 27 * 27, 192 * 13 * 13, 384 * 13 * 13,
               256 * 13 * 13, 256 * 13 * 13, 256 * 6 * 6, 9216, 4096, 4096, 1000]
    assert f"memory in conv1-pool2: {sum(outputs[:4]) / sum(outputs):.0%}" in text


def test_vgg_stages_cost_the_same(executed) -> None:
    lines = stdout(executed["vgg-stages"]).splitlines()
    assert len(lines) == 5
    # a 3x3 conv, C -> C channels at HxW: 9 C^2 H W multiply-adds; halving the side and
    # doubling C leaves it unchanged until C stops at 512
    same = 9 * 64 * 64 * 224 * 224
    assert same == 9 * 512 * 512 * 28 * 28 == 1_849_688_064
    for line, side in zip(lines[:4], (224, 112, 56, 28), strict=True):
        assert line.split(":")[0].strip().startswith(f"{side}x{side}x")
        assert str(same) in line
    assert lines[4].split(":")[0].strip() == "14x14x512"
    assert str(9 * 512 * 512 * 14 * 14) in lines[4] and str(same) not in lines[4]


def test_googlenet_1x1_saving(executed) -> None:
    text = stdout(executed["googlenet-numbers"])
    # inception 3a's 5x5 branch at 28x28: 192 -> 32 channels directly, or 192 -> 16
    # through a 1x1 and then 16 -> 32
    direct = 28 * 28 * 32 * 192 * 5 * 5
    reduced = 28 * 28 * 16 * 192 + 28 * 28 * 32 * 16 * 5 * 5
    assert (direct, reduced) == (120_422_400, 12_443_648)
    assert (f"{direct:,} MACs on all 192 channels, {reduced:,} through the "
            f"16-channel 1x1 ({direct / reduced:.1f}x)") in text


def test_resnet_block_in_lecture_units(executed) -> None:
    rows = {line.split()[0]: line.split()[1:]
            for line in stdout(executed["resnet-numbers"]).splitlines()[1:]}
    # 1x1 C->... : a block inside a stage reads 4C: 4 + 9 + 4 = 17 H W C^2 against a
    # basic block's 9 + 9 = 18
    assert [float(x) for x in rows["layer1.1"]] == [64, 4 + 9 + 4, 9 + 9]


def test_se_overhead(executed) -> None:
    # an SE block on C channels: fc C -> C/16 and C/16 -> C, with biases; se_resnet50
    # has 3, 4, 6, 3 blocks at 256, 512, 1024, 2048 channels
    stages = [(3, 256), (4, 512), (6, 1024), (3, 2048)]
    se = sum(n * (2 * c * (c // 16) + c // 16 + c) for n, c in stages)
    text = stdout(executed["se-overhead"])
    assert "16 SE blocks: " in text
    assert f"{se:,} parameters ({se / params('se_resnet50'):.1%})" in text


def test_efficientnet_scaling(executed) -> None:
    table = result(executed["efficientnet"])["text/plain"]
    for i, side in enumerate((224, 240, 260, 300, 380, 456, 528, 600)):
        row = next(line for line in table.splitlines() if f"efficientnet_b{i} " in line)
        _, model, shown_side, shown_params, _, macs_ratio = row.split()
        assert (model, shown_side, shown_params) == (
            f"efficientnet_b{i}", str(side), str(params(f"efficientnet_b{i}")))
    # the markdown above the cell: "12.5x in parameters and nearly 100x in multiply-adds"
    assert f'{params("efficientnet_b7") / params("efficientnet_b0"):.1f}' == "12.5"
    assert 90 < float(macs_ratio) < 100
