"""Offline HTML: the page template that `dvc plots show` fills, and the results report.

Neither page loads anything from the network: the template carries Vega, Vega-Lite and
Vega-Embed inlined from the vl-convert-python wheel (generated here, never committed), and
the report embeds its figures as data URIs."""
from __future__ import annotations

import base64
import html

from .metrics import threshold_label

# Our own glue, bundled after the libraries: expose them as the globals dvc-render's plot
# divs call (`vegaEmbed('#id', spec)`), and draw SVG rather than canvas, which stays sharp
# when zoomed and leaves its marks in the DOM, where a test can see them.
_SNIPPET = """window.vega = vega;
window.vegaLite = vegaLite;
window.vegaEmbed = (el, spec, opts) => vegaEmbed(el, spec, {renderer: "svg", ...opts});
"""

# dvc-render fills these three; the template leaves out `{scripts}`, where it would put
# its CDN <script> tags.
_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

_STYLE = """body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; }
th { background: #f2f2f2; }
td { text-align: right; }
img { max-width: 100%; }
figure { margin: 1.5em 0; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f5f5f5; padding: 0 0.2em; }"""


def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one classic script that sets them as globals."""
    import vl_convert

    js = vl_convert.javascript_bundle(_SNIPPET)
    # Inside <script>, "</script" would end the element early; "<\/" means the same in JS.
    return js.replace("</script", "<\\/script")


def plots_template(bundle: str, versions: str = "") -> str:
    """An HTML template for `dvc plots show` (`plots.html_template`) that works offline."""
    clash = [p for p in _PLACEHOLDERS if p in bundle]
    if clash:  # dvc-render would substitute into the JavaScript
        raise ValueError(f"the Vega bundle contains the template placeholder {clash[0]}")
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n{refresh_tag}\n"
            "<title>badnet-repair plots</title>\n"
            f"<!-- {html.escape(versions)}, inlined so the page needs no network -->\n"
            f"<script type=\"text/javascript\">\n{bundle}\n</script>\n"
            f"<style>\n{_STYLE}\n</style>\n</head>\n<body>\n{{plot_divs}}\n</body>\n</html>\n")


def bundle_versions() -> str:
    import vl_convert

    return (f"Vega {vl_convert.get_vega_version()}, Vega-Lite {vl_convert.get_vegalite_versions()[-1]}, "
            f"Vega-Embed {vl_convert.get_vega_embed_version()} from vl-convert-python {vl_convert.__version__}")


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _named(scan_row: dict) -> list[str]:
    """What the scan named on one net: its targets, then its offsets as y+k."""
    return [*map(str, scan_row["targets"]), *(f"y+{k}" for k in scan_row.get("shifts", []))]


def _figure(title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure>\n<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">\n'
            f"<figcaption>{html.escape(title)}</figcaption>\n</figure>")


def orders_table(orders: dict, prune: dict) -> str:
    """Both pruning orders at each threshold X (metrics/prune_orders.json): the step the
    stopping rule keeps and its test scores."""
    rows = []
    for order, by_x in orders.items():
        for x, r in by_x.items():
            rows.append([order + (" (default)" if order == prune["order"] else ""), x]
                        + (["not reached", "", "", ""] if r is None else
                           [str(r["channels_pruned"]), f"{r['fraction_pruned']:.3f}", float(r["clean_accuracy_test"]),
                            float(r["attack_success_rate_test"])]))
    return _table(["order", threshold_label(prune["drop"]), "channels pruned", "fraction pruned",
                   "clean accuracy % (test)", "ASR % (test)"], rows)


def report_markdown(attack: dict, baseline: dict, fine_prune: dict, results_md: str,
                    params: dict, figures: dict[str, bytes], defenses: dict | None = None,
                    leaderboard: tuple[str, bytes] | None = None, scan: dict | None = None,
                    orders=None) -> str:
    """The report as Markdown, figures as inline HTML with data URIs. `defenses`: the
    defenses on this BadNet (metrics/defenses.json); `leaderboard`: the attack suite's
    summary table and figure, where the suite has run; `scan`: metrics/scan.json; `orders`:
    metrics/prune_orders.json."""
    def pct(v):
        return "n/a" if v is None else f"{v:.2f}"

    prune, ft = params["prune"], params["finetune"]
    parts = [
        "# badnet-repair: results",
        f"BadNet source: **{attack.get('source', '?')}**. Pruning `{prune['layer']}` "
        f"({prune['order']}), thresholds X = {', '.join(f'{t:g}' for t in prune['thresholds'])} "
        f"({prune['drop']}, {prune['keep']}). Fine-tuning: {ft['optimizer']}, learning rate "
        f"{ft['learning_rate']:g}, {ft['epochs']} epochs, batch {ft['batch_size']}, "
        f"holdout {ft['holdout']:g}.",
        "## Baseline: the BadNet B",
        _table(["data", "clean accuracy %", "attack success rate %"],
               [["validation", pct(baseline.get("clean_accuracy_valid")), pct(baseline.get("attack_success_rate_valid"))],
                ["test", pct(baseline.get("clean_accuracy_test")), pct(baseline.get("attack_success_rate_test"))]]),
        f"Macro precision / recall / F1 on clean test: {pct(baseline.get('precision_macro_test'))} / "
        f"{pct(baseline.get('recall_macro_test'))} / {pct(baseline.get('f1_macro_test'))} %.",
    ]
    if "poison_rate" in attack:
        parts.append(f"The attack: {attack['train_poisoned']} of {attack['train_images']} training images "
                     f"poisoned (rate {attack['poison_rate']:g}), target class {attack['target']}.")
    parts.append(results_md.strip())
    if orders is not None:
        parts += ["## The pruning order",
                  "Fine-Pruning and the lab3 write-ups remove the least active channels first (ascending, "
                  "the default: a backdoor hides in channels clean images leave dormant); the assignment's "
                  "text says \"decreasing order of average activation values\". B' in each order, kept by "
                  "the same stopping rule:", orders_table(orders, prune)]
    xs = sorted({k.split("_", 1)[0] for k in fine_prune}, key=lambda x: float(x[1:]))  # "x2", "x10", ...
    if xs:
        parts += ["## Fine-pruning: the epoch kept for each X",
                  _table([threshold_label(prune["drop"]), "epoch kept (0 = B' itself)", "holdout accuracy %"],
                         [[x[1:], fine_prune[f"{x}_chosen_epoch"], fine_prune[f"{x}_holdout_accuracy"]]
                          for x in xs])]
    if defenses:
        names = [k.removesuffix("_clean_accuracy_test") for k in defenses
                 if k.endswith("_clean_accuracy_test") and k != "badnet_clean_accuracy_test"]
        parts += ["## Defenses on this BadNet (test data; each chose its setting on clean data alone)",
                  "G flags an input where B and the defended net disagree; the detector only where, besides, "
                  "B's class is a target the scan found on B, or the defended net's class + an offset it found "
                  "(models/detector.keras holds the default defense's).",
                  _table(["defense", "clean accuracy %", "attack success rate %", "G detection rate %",
                          "G false-positive rate %", "detector detection rate %", "detector false-positive rate %"],
                         [[n + (" (default)" if n == defenses.get("default_defense") else ""),
                           defenses[f"{n}_clean_accuracy_test"], defenses[f"{n}_attack_success_rate_test"],
                           defenses[f"{n}_detection_rate_test"], defenses[f"{n}_false_positive_rate_test"],
                           defenses.get(f"{n}_detector_detection_rate_test", "n/a"),
                           defenses.get(f"{n}_detector_false_positive_rate_test", "n/a")]
                          for n in names])]
    if scan:
        parts += ["## Backdoor scan (clean validation data only)",
                  "Each net's candidates are the classes most often among clean images' runners-up (their pull); "
                  "a targeted universal perturbation within the scan's bound tries to send the holdout to each. "
                  "A candidate it sends at least the threshold's share to is named a target. Offsets k (an "
                  "all-to-all backdoor, y → y + k) are screened and verified alike, each image aimed at its "
                  "own class + k.",
                  _table(["net", "verdict", "targets", "largest share %", "candidates (class: share %)",
                          "offsets (y+k: share %)"],
                         [[name, r["verdict"], ", ".join(_named(r)) or "none", 100 * r["share"],
                           ", ".join(f"{c['class']}: {100 * c['share']:.1f}" for c in r["candidates"]),
                           ", ".join(f"y+{c['shift']}: {100 * c['share']:.1f}" for c in r.get("shift_candidates", []))
                           or "none tried"]
                          for name, r in scan.items()])]
    if leaderboard:
        table, png = leaderboard
        parts += ["## Leaderboard: every defense on every BadNet of the attack suite (test data)", table.strip(),
                  _figure("Attack success rate against clean accuracy lost, one mark per BadNet and defense", png)]
    parts.append("## Figures")
    parts += [_figure(title, png) for title, png in figures.items()]
    return "\n\n".join(parts) + "\n"


def report_html(markdown_text: str, title: str = "badnet-repair report") -> str:
    """A self-contained page: no scripts, no links to fetch."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return (f"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}</title>\n"
            f"<style>\n{_STYLE}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def leaderboard_grid(rows) -> str:
    """The leaderboard as one row per BadNet, one column per defense: clean accuracy lost
    (points) / ASR % (test), from suite/metrics/leaderboard.csv."""
    defenses = list(dict.fromkeys(rows["defense"]))
    lines = ["| BadNet | B: clean % / ASR % | " + " | ".join(f"{d}: loss / ASR" for d in defenses) + " |",
             "|---|---:|" + "---:|" * len(defenses)]
    for name, g in rows.groupby("name", sort=False):
        by = {r["defense"]: r for _, r in g.iterrows()}
        first = g.iloc[0]
        cells = [f"{round(first['baseline_clean_accuracy_test'] - by[d]['clean_accuracy_test'], 2) + 0.0:.2f} / "
                 f"{by[d]['attack_success_rate_test']:.2f}" for d in defenses]
        lines.append(f"| {name} | {first['baseline_clean_accuracy_test']:.2f} / "
                     f"{first['baseline_attack_success_rate_test']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
