"""The offline plots template and the results report (pure functions; a browser check)."""
import base64
import io
import re

import pytest
from PIL import Image

from badnet_repair import report

PARAMS = {"prune": {"layer": "pool_3", "order": "ascending", "thresholds": [2.0, 4.0], "keep": "first_past",
                    "drop": "absolute"},
          "finetune": {"optimizer": "adam", "learning_rate": 0.003, "epochs": 10, "batch_size": 64, "holdout": 0.2,
                       "seed": 1}}
RESULTS_MD = """## Pruned net B' (test data)

| X (points) | B' | clean accuracy % |
|---:|---|---:|
| 2 | pruned | 95.07 |
| 2 | fine-pruned | 96.12 |
"""


def _png(color):
    buf = io.BytesIO()
    Image.new("RGB", (8, 5), color).save(buf, format="PNG")
    return buf.getvalue()


def _report():
    figures = {"sweep": _png("red"), "samples": _png("blue")}
    text = report.report_markdown(
        {"source": "synthetic", "poison_rate": 0.05, "train_poisoned": 20, "train_images": 400, "target": 3},
        {"clean_accuracy_valid": 98.0341, "clean_accuracy_test": 97.5, "attack_success_rate_valid": 99.6,
         "attack_success_rate_test": 99.123, "precision_macro_test": 1.0, "recall_macro_test": 2.0,
         "f1_macro_test": 3.0},
        {"x2_chosen_epoch": 7, "x2_holdout_accuracy": 95.71, "x10_chosen_epoch": 0, "x10_holdout_accuracy": 90.0},
        RESULTS_MD, PARAMS, figures)
    return report.report_html(text), figures


def test_report_holds_the_tables_and_embeds_each_figure_byte_for_byte():
    page, figures = _report()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page)
    for value in ("98.03", "97.50", "99.60", "99.12", "95.07", "96.12", "95.71", "7"):
        assert value in cells, value
    # the fine-pruning rows come in threshold order, 2 before 10
    assert cells.index("95.71") < cells.index("90.00")
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', page)
    assert {alt: base64.b64decode(data) for alt, data in images} == figures


def test_report_needs_nothing_from_the_network():
    page, _ = _report()
    assert "<script" not in page
    assert not re.findall(r'(?:src|href)="(?!data:)', page)


def test_plots_template_inlines_the_bundle_and_leaves_out_dvcs_cdn_scripts():
    from dvc_render.html import render_html
    from dvc_render.vega import VegaRenderer

    page = report.plots_template("window.vegaEmbed = function () {};", "test")
    assert page.count("{plot_divs}") == 1 and "{scripts}" not in page
    renderer = VegaRenderer([{"x": 1, "y": 2, "rev": "workspace"}], "p.csv", x="x", y="y")
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        out = Path(render_html([renderer], Path(d) / "index.html", html_template=page))
        filled = out.read_text()
    assert "window.vegaEmbed = function () {};" in filled and "vegaEmbed('#" in filled
    assert "cdn.jsdelivr" not in filled and "<script src" not in filled


def test_plots_template_refuses_a_bundle_that_holds_a_placeholder():
    with pytest.raises(ValueError, match="scripts"):
        report.plots_template("var s = '{scripts}';")


def test_vega_bundle_is_a_classic_script_that_sets_the_globals():
    js = report.vega_bundle()
    assert "</script" not in js
    for name in ("window.vega=", "window.vegaLite=", "window.vegaEmbed="):
        assert name in js.replace(" ", ""), name
    assert not re.match(r"\s*(import|export)\b", js)


def test_report_renders_in_headless_chromium(tmp_path, dump_dom):
    page, figures = _report()
    path = tmp_path / "report.html"
    path.write_text(page)
    dom = dump_dom(path)
    assert dom.count("<table>") == 3  # baseline, the results table, fine-pruning
    assert len(re.findall(r"<img ", dom)) == len(figures)


def test_report_shows_each_defense_and_the_leaderboard_when_given():
    defenses = {"default_defense": "ft", "badnet_clean_accuracy_test": 98.0,
                "fine_pruning_clean_accuracy_test": 95.5, "fine_pruning_attack_success_rate_test": 12.25,
                "fine_pruning_detection_rate_test": 80.5, "fine_pruning_false_positive_rate_test": 4.75,
                "ft_clean_accuracy_test": 97.0, "ft_attack_success_rate_test": 60.0,
                "ft_detection_rate_test": 30.0, "ft_false_positive_rate_test": 2.0,
                "ft_detector_detection_rate_test": 29.5, "ft_detector_false_positive_rate_test": 0.125}
    board = ("| defense | BadNets |\n|---|---:|\n| ft | 8 |\n", _png("green"))
    text = report.report_markdown({"source": "synthetic"}, {}, {}, "", PARAMS, {}, defenses, board)
    page = report.report_html(text)
    rows = [tuple(re.findall(r"<td[^>]*>([^<]*)</td>", row)) for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]
    assert ("fine_pruning", "95.50", "12.25", "80.50", "4.75", "n/a", "n/a") in rows  # no detector scores given
    assert ("ft (default)", "97.00", "60.00", "30.00", "2.00", "29.50", "0.12") in rows
    assert "Leaderboard" in page and base64.b64encode(board[1]).decode() in page
    assert "Leaderboard" not in report.report_html(report.report_markdown({}, {}, {}, "", PARAMS, {}, defenses))


def test_report_shows_the_scan_of_each_net_when_given():
    scanned = {"badnet": {"verdict": "backdoor found", "targets": [7, 9], "share": 0.991,
                          "candidates": [{"class": 7, "pull": 9.0, "share": 0.991, "norm": 3.0},
                                         {"class": 9, "pull": 4.0, "share": 0.6, "norm": 4.0},
                                         {"class": 2, "pull": 2.0, "share": 0.125, "norm": 4.0}],
                          "shifts": [1], "shift_candidates": [{"shift": 1, "pull": 40.0, "share": 0.8, "norm": 3.5}]},
               "i_bau": {"verdict": "none found", "targets": [], "share": 0.25,
                         "candidates": [{"class": 7, "pull": 2.5, "share": 0.25, "norm": 4.0}]}}
    page = report.report_html(report.report_markdown({}, {}, {}, "", PARAMS, {}, None, None, scanned))
    rows = [tuple(re.findall(r"<td[^>]*>([^<]*)</td>", row)) for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]
    assert ("badnet", "backdoor found", "7, 9, y+1", "99.10", "7: 99.1, 9: 60.0, 2: 12.5", "y+1: 80.0") in rows
    assert ("i_bau", "none found", "none", "25.00", "7: 25.0", "none tried") in rows  # a scan from before offsets
    assert "Backdoor scan" not in report.report_html(report.report_markdown({}, {}, {}, "", PARAMS, {}))


def test_report_shows_both_pruning_orders_when_given():
    orders = {"ascending": {"2": {"channels_pruned": 17, "fraction_pruned": 0.283333, "clean_accuracy_valid": 96.0,
                                  "clean_accuracy_test": 96.5, "attack_success_rate_test": 99.0}, "4": None},
              "descending": {"2": {"channels_pruned": 1, "fraction_pruned": 0.016667, "clean_accuracy_valid": 95.0,
                                   "clean_accuracy_test": 95.25, "attack_success_rate_test": 100.0}, "4": None}}
    page = report.report_html(report.report_markdown({}, {}, {}, "", PARAMS, {}, orders=orders))
    rows = [tuple(re.findall(r"<td[^>]*>([^<]*)</td>", row)) for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]
    assert ("ascending (default)", "2", "17", "0.283", "96.50", "99.00") in rows
    assert ("descending", "2", "1", "0.017", "95.25", "100.00") in rows
    assert ("descending", "4", "not reached", "", "", "") in rows
    assert "pruning order" not in report.report_html(report.report_markdown({}, {}, {}, "", PARAMS, {}))
