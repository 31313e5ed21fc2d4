"""README.md and docs/: short, every link resolves, every table equals the committed files."""
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from badnet_repair.params import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))  # tools/docs.py: not part of the package
import docs  # noqa: E402
README = ROOT / "README.md"
PAGES = [README] + sorted((ROOT / "docs").glob("*.md"))
TOPICS = ["pipeline", "defenses", "params", "speed", "reliability", "sharing", "data-format"]


def _committed_json(path: str) -> dict:
    """The file as staged in git: the pages describe the committed run, not a `dvc repro`
    made since on a CPU that trains slightly different weights."""
    return json.loads(docs.git_index(path))


def _block(text: str, name: str) -> str:
    m = re.search(rf"<!-- render: {name} -->\n(.*?)<!-- end: {name} -->", text, re.S)
    assert m, f"no {name} block"
    return m.group(1)


def _cells(table: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in table.strip().splitlines()[2:]]
    return [[c.strip() for c in r] for r in rows]


def test_readme_is_short_and_docs_has_every_topic():
    assert len(README.read_text().splitlines()) <= 200
    for topic in TOPICS:
        assert (ROOT / "docs" / f"{topic}.md").is_file(), topic
        assert f"(docs/{topic}.md)" in README.read_text(), f"README does not link docs/{topic}.md"


def test_every_page_is_rendered_from_the_committed_files():
    """tools/render-docs --check: each table between render markers is what the files give."""
    res = subprocess.run([sys.executable, str(ROOT / "tools/render-docs"), "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    used = {name for p in PAGES for name in re.findall(r"<!-- render: ([\w-]+) -->", p.read_text())}
    assert used == set(docs.RENDERERS), "a renderer no page uses, or the other way round"


def test_a_stale_block_is_refilled_and_an_unknown_one_refused():
    stale = "x\n<!-- render: defenses -->\n| old | table |\n<!-- end: defenses -->\ny\n"
    fresh = docs.render(stale)
    assert "| old | table |" not in fresh and fresh.startswith("x\n") and fresh.endswith("y\n")
    assert docs.render(fresh) == fresh
    with pytest.raises(KeyError, match="unknown render block 'nope'"):
        docs.render("<!-- render: nope -->\n<!-- end: nope -->", "page.md")


def test_mission_table_by_hand():
    """Each figure of the README's mission table, from the JSON files directly."""
    b = _committed_json("metrics/baseline.json")
    r = _committed_json("metrics/repaired.json")
    rows = _cells(_block(README.read_text(), "mission"))
    assert rows[0][4:6] == [f"{b['clean_accuracy_test']:.2f}", f"{b['attack_success_rate_test']:.2f}"]
    thresholds = yaml.safe_load(docs.git_index("params.yaml"))["prune"]["thresholds"]
    assert len(rows) == 1 + 2 * len(thresholds)
    for i, x in enumerate(thresholds):
        pruned, repaired = rows[1 + 2 * i], rows[2 + 2 * i]
        p = f"x{x}_"
        assert pruned[0].startswith(f"B'_{x}") and repaired[0].startswith(f"G_{x}")
        assert int(pruned[2]) == r[p + "channels_pruned"] and float(pruned[3]) == round(r[p + "fraction_pruned"], 3)
        assert float(pruned[4]) == round(r[p + "pruned_clean_accuracy"], 2)
        assert float(pruned[5]) == round(r[p + "pruned_attack_success_rate"], 2)
        for col, key in zip(range(4, 8), ["clean_accuracy", "attack_success_rate", "detection_rate",
                                          "false_positive_rate"]):
            assert float(repaired[col]) == round(r[p + "repaired_" + key], 2)


def test_default_defenses_table_by_hand():
    m = _committed_json("metrics/defenses.json")
    rows = _cells(_block((ROOT / "docs/defenses.md").read_text(), "defenses"))
    names = yaml.safe_load(docs.git_index("params.yaml"))["defend"]["names"]
    assert [r[0].split()[0] for r in rows[1:]] == names
    for row, d in zip(rows[1:], names):
        assert ("(default)" in row[0]) == (d == m["default_defense"])
        assert [float(c) for c in row[1:]] == [round(m[f"{d}_{k}_test"], 2) for k in
                                               ("clean_accuracy", "attack_success_rate", "detection_rate",
                                                "false_positive_rate", "detector_detection_rate",
                                                "detector_false_positive_rate")]


def test_pruning_orders_table_by_hand():
    """docs/pipeline.md's two orders: each row's step and scores are the committed sweep's
    (plots/prune_orders.csv) at the first step whose validation accuracy is X points below B's."""
    import io

    import pandas as pd

    sweep = pd.read_csv(io.StringIO(docs.git_index("plots/prune_orders.csv")))
    rows = _cells(_block((ROOT / "docs/pipeline.md").read_text(), "prune_orders"))
    xs = yaml.safe_load(docs.git_index("params.yaml"))["prune"]["thresholds"]
    assert len(rows) == 2 * len(xs)
    for row in rows:
        order, x = row[0].split()[0], float(row[1])
        s = sweep[sweep["order"] == order].reset_index(drop=True)
        first = next(k for k in range(len(s)) if s["clean_accuracy_valid"][k] <= s["clean_accuracy_valid"][0] - x)
        assert int(row[2]) == s["channels_pruned"][first] == first
        assert [float(c) for c in row[4:6]] == [round(s["clean_accuracy_test"][first], 2),
                                                 round(s["attack_success_rate_test"][first], 2)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_link_resolves():
    checked = 0
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"https?://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.relative_to(ROOT)}: link to {target}: no such file"
            if anchor:
                assert anchor in _anchors(dest), f"{page.relative_to(ROOT)}: link to {target}: no such heading"
            checked += 1
    assert checked >= 20


# A measured figure: a decimal with a unit, or a duration or size. Rendered blocks and code
# are exempt; everything else must point at a table instead of quoting a number.
FACTS = {"2.2 GB"}  # the lab3 download's size: a property of the data, not a measurement here
FIGURE = re.compile(r"\b\d+\.\d+\s?(?:%|×|s\b|min\b|GB\b|MB\b)|\b\d+\s?(?:min|ms|GB|MB)\b|\b\d+\s?s\b")


def test_no_figure_outside_the_rendered_tables():
    bad = []
    for page in PAGES:
        text = re.sub(r"<!-- render: ([\w-]+) -->.*?<!-- end: \1 -->", "", page.read_text(), flags=re.S)
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for line in text.splitlines():
            bad += [f"{page.relative_to(ROOT)}: {m.group(0)!r} in: {line.strip()}" for m in FIGURE.finditer(line)
                    if m.group(0) not in FACTS]
    assert not bad, "\n".join(bad)


def test_the_figure_lint_catches_figures():
    assert FIGURE.search("took 14 min 3 s") and FIGURE.search("ASR 57.18 %") and FIGURE.search("36.8×")
    assert not FIGURE.search("55×47×3, 1283 classes, X = 2, 4 and 10, at most 1 %")


def _leaves(schema, prefix=""):
    for k, v in schema.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def _schema():
    """params.SCHEMA with each defense's own section (its module's PARAMS) in place of OTHER."""
    from badnet_repair import defenses
    from badnet_repair.params import OTHER

    full = dict(SCHEMA, defend={k: v for k, v in SCHEMA["defend"].items() if k != OTHER})
    full["defend"].update({n: defenses.load(n).PARAMS for n in defenses.names()})
    return full


def test_every_param_is_documented():
    assert set(_leaves(_schema())) == set(docs.PARAM_DOCS)
    doc = yaml.safe_load(docs.git_index("params.yaml"))
    assert set(_leaves(doc)) == set(docs.PARAM_DOCS)
    table = _block((ROOT / "docs/params.md").read_text(), "params")
    for name in docs.PARAM_DOCS:
        assert f"| `{name}` |" in table, name


def test_record_replaces_the_rows_of_the_same_key(tmp_path):
    docs.record("bench", [{"key": "a", "v": "1", "cpu": "X"}, {"key": "b", "v": "2", "cpu": "X"}], root=tmp_path)
    docs.record("bench", [{"key": "a", "v": "3", "cpu": "Y"}], root=tmp_path)
    lines = (tmp_path / docs.RESULTS / "bench.csv").read_text().splitlines()
    assert lines == ["key,v,cpu", "b,2,X", "a,3,Y"]


def test_the_readme_claims_hold_for_the_committed_files():
    """The README's sentences about its tables: pruning alone leaves the backdoor (every B'_X
    keeps an ASR above 90 % and G_X flags under 10 % of poisoned inputs), I-BAU meets the target
    on every BadNet or on most (the README says which), and on most of the tuning set (each miss
    named with the ASR it keeps), and each other defense's net that meets it is named."""
    import pandas as pd

    readme = README.read_text()
    r = _committed_json("metrics/repaired.json")
    assert "Pruning alone leaves this backdoor in place" in readme
    for x in yaml.safe_load(docs.git_index("params.yaml"))["prune"]["thresholds"]:
        assert r[f"x{x}_pruned_attack_success_rate"] > 90 and r[f"x{x}_repaired_detection_rate"] < 10, x
    board = pd.read_csv(io.StringIO(docs.git_index("suite/metrics/leaderboard.csv")))
    board = board[board["poison_rate"] > 0]  # BadNets: a clean net has no backdoor to meet the target on
    met = (board["attack_success_rate_test"] <= 1.0) & \
        (board["baseline_clean_accuracy_test"] - board["clean_accuracy_test"] <= 1.0)
    text = " ".join(readme.split())
    ours = board["defense"] == "i_bau"
    assert met[ours].mean() > 0.5
    if met[ours].all():
        assert "I-BAU, the default, meets the target on every BadNet of the leaderboard" in text
    else:
        assert "I-BAU, the default, meets the target on most BadNets, not on every one" in text
    others = board[met & ~ours]  # each named with its defense
    said = re.search(r"Of the other defenses only (.*?):", text)
    if others.empty:
        assert "The other defenses meet it on no BadNet" in text and not said
    for _, row in others.iterrows():
        assert said and row["name"] in said.group(1) and row["defense"].replace("_", "-") in said.group(1).lower()
    tuned = board[(board["set"] == "tuning") & (board["defense"] == "i_bau")]
    assert len(tuned) >= 8 and met[tuned.index].sum() >= 8
    from badnet_repair.families import FAMILIES
    fams = board.loc[tuned.index, "attack"].isin(FAMILIES).sum()
    assert fams >= 1 and (f"On the tuning set it meets it on {met[tuned.index].sum()} of its {len(tuned)}, "
                          f"{fams} of them family nets") in text
    for _, row in tuned[~met[tuned.index]].iterrows():
        assert f"on {row['name']} it keeps {round(row['attack_success_rate_test'])} % ASR" in text, row["name"]
    assert yaml.safe_load(docs.git_index("params.yaml"))["defend"]["default"] == "i_bau"


def test_the_readme_claim_on_the_evaluation_set_holds():
    """The README's sentence on the evaluation set, counted from the committed leaderboard:
    on how many of its BadNets I-BAU meets the target (ASR <= 1 %, at most 1 point lost), the
    ASR it keeps on each it misses, and the most it loses on a clean net (the target: 1 point)."""
    import pandas as pd

    text = " ".join(README.read_text().split())
    board = pd.read_csv(io.StringIO(docs.git_index("suite/metrics/leaderboard.csv")))
    ev = board[(board["set"] == "evaluation") & (board["defense"] == "i_bau")]
    lost = ev["baseline_clean_accuracy_test"] - ev["clean_accuracy_test"]
    bad, clean = ev[ev["poison_rate"] > 0], ev[ev["poison_rate"] == 0]
    met = (bad["attack_success_rate_test"] <= 1.0) & (lost[bad.index] <= 1.0)
    assert len(bad) >= 6 and len(clean) >= 3
    worst = max(float(lost[clean.index].max()), 0.0)
    assert (f"on the evaluation set I-BAU meets the target on {met.sum()} of its {len(bad)} BadNets "
            f"and loses at most {worst:.2f} points on its {len(clean)} clean nets") in text
    for i in clean.index[lost[clean.index] > 1.0]:  # over the clean nets' target: named
        assert f"on {ev.loc[i, 'name']} it loses {lost[i]:.2f} points, over the 1-point target" in text
    for _, row in bad[~met].iterrows():
        assert f"on {row['name']} it keeps {round(row['attack_success_rate_test'])} % ASR" in text, row["name"]


def test_the_scan_page_counts_its_misses_from_the_committed_leaderboard():
    """docs/scan.md's "What it misses", counted again from the committed leaderboard: how
    many defended nets keep more than 1 % ASR, which of them the scan calls clean (each named
    with its rounded ASR), and which repaired BadNets' nets (ASR at or under 1 %) and which
    defended clean nets it calls backdoored."""
    import pandas as pd

    text = " ".join((ROOT / "docs" / "scan.md").read_text().split())
    board = pd.read_csv(io.StringIO(docs.git_index("suite/metrics/leaderboard.csv")), dtype={"scan_targets": str})
    found = board["scan_targets"].fillna("").str.strip() != ""
    kept = (board["poison_rate"] > 0) & (board["attack_success_rate_test"] > 1.0)
    missed = board[kept & ~found]
    assert (f"In the committed suite (`suite/scores/`, {board['name'].nunique()} nets), {kept.sum()} defended "
            f"nets keep more than 1 % ASR, and the scan calls {len(missed)} of them clean") in text
    for _, row in missed.iterrows():
        assert re.search(rf"of {re.escape(row['name'])} \({round(row['attack_success_rate_test'])} %", text), row["name"]
    for clean_net, what in ((False, "defended BadNet{} at or under 1 % ASR"), (True, "defended clean net{}")):
        wrong = board[found & ~kept & ((board["poison_rate"] == 0) == clean_net)]  # called backdoored, each named
        assert f"the scan calls {len(wrong)} {what.format('' if len(wrong) == 1 else 's')} backdoored" in text
        for _, row in wrong.iterrows():
            assert f"{row['defense']} on {row['name']} ({round(row['scan_share'])} %" in text, (row["name"], row["defense"])


OLD_DEFAULT, BALL_DEFAULT = "targeted_bound 0, stop_rounds 1 (the default before)", "targeted_bound 8, stop_rounds 2"
MASKED = "targeted_bound 8, stop_rounds 2, masked_epochs 5"
LADDER = MASKED + ", learning_rates [0.0002, 0.0001]"
STRATIFIED = BALL_DEFAULT + ", stratified holdout"  # benchmarks/holdout_split.py's split, stopped after 14 nets
STOP_SHARE = STRATIFIED + ", stop_share 0.02"
DEFAULT = STOP_SHARE  # params.yaml's I-BAU since the three-seed rule (docs/defenses.md)


def _met_counts(name: str, group) -> dict:
    """(variant, group) -> (BadNets meeting the target, BadNets run), from a committed results file
    (the target: ASR <= 1 %, at most 1 point lost, test), counted here without leaderboard.py."""
    import csv

    count = {}
    for r in csv.DictReader(io.StringIO(docs.git_index(f"benchmarks/results/{name}.csv"))):
        lost = float(r["badnet_clean_accuracy_test"]) - float(r["clean_accuracy_test"])
        ok = float(r["attack_success_rate_test"]) <= 1.0 and lost <= 1.0
        for g in {"all", group(r["badnet"])}:
            met, seen = count.get((r["variant"], g), (0, 0))
            count[r["variant"], g] = (met + ok, seen + 1)
    return count


def _tuning_group(name: str) -> str:
    kind, seed = name.rsplit("-", 1)
    if kind == "sunglasses":
        return "new" if int(seed) >= 2024 else "suite"
    from badnet_repair.families import FAMILIES

    return "family" if kind in FAMILIES else "other"


def test_the_worn_trigger_study_counts_from_its_committed_rows():
    """docs/defenses.md's worn-trigger study, counted again from benchmarks/results/i_bau_bound.csv:
    the table's "target met" row, and the prose's count for each setting on the new sunglasses
    seeds (2024 on), on all the sunglasses BadNets, on the other CSAW-kind tuning BadNets and on
    the family tuning nets (where it ran there); the README's count for the default; and the
    evaluation table's "target met" row, from benchmarks/results/i_bau_evaluation.csv."""
    text = (ROOT / "docs" / "defenses.md").read_text()
    count = _met_counts("i_bau_bound", _tuning_group)
    variants = list(dict.fromkeys(v for v, _ in count if ", defend.seed " not in v))  # those: the seed table's
    last = _cells(_block(text, "i_bau_bound"))[-1]
    assert last[0] == "target met" and last[2:2 + len(variants)] == [
        "{} of {}".format(*count[v, "all"]) for v in variants]
    prose = " ".join(text.split())
    for variant, lead in ((OLD_DEFAULT, "The default before meets the target on"),
                          ("targeted_bound 8", "`targeted_bound: 8` meets it on"),
                          (BALL_DEFAULT, "With `stop_rounds: 2` as well it meets it on"),
                          (MASKED, "With `masked_epochs: 5` as well it meets it on"),
                          (LADDER, "With the ladder `learning_rates: [0.0002, 0.0001]` as well it meets it on"),
                          (STRATIFIED, "With the stratified holdout as well it meets it on"),
                          (STOP_SHARE, "With `stop_share: 0.02` as well it meets it on")):
        new, suite, other, family = (count.get((variant, g), (0, 0)) for g in ("new", "suite", "other", "family"))
        sentence = (f"{lead} {new[0]} of the {new[1]} new seeds, {new[0] + suite[0]} of the {new[1] + suite[1]} "
                    "sunglasses BadNets")
        sentence += (f", {other[0]} of the {other[1]} other CSAW-kind tuning BadNets and {family[0]} of the "
                     f"{family[1]} family tuning nets" if family[1] else
                     f" and {other[0]} of the {other[1]} other CSAW-kind tuning BadNets")
        assert sentence in prose, variant
    new = count[DEFAULT, "new"]
    assert f"the default meets it on {new[0]} of the {new[1]} new seeds" in " ".join(README.read_text().split())
    evaluation = _met_counts("i_bau_evaluation", lambda name: "all")
    last = _cells(_block(text, "i_bau_evaluation"))[-1]
    settings = list(dict.fromkeys(v for v, _ in evaluation))
    assert last[0] == "target met" and last[2:2 + len(settings)] == [
        "{} of {}".format(*evaluation[v, "all"]) for v in settings]


def test_the_seed_table_counts_each_settings_verdicts_over_its_seeds():
    """docs/defenses.md's seed table, counted again from benchmarks/results/i_bau_bound.csv the
    slow way: for each setting also run with another defend.seed, on each net run with one, how
    many of the setting's seeds meet the target (its own rows are params.yaml's seed, 2020)."""
    import csv

    rows = list(csv.DictReader(io.StringIO(docs.git_index("benchmarks/results/i_bau_bound.csv"))))
    seeded = {}  # setting -> {seed: {net: met}}
    for r in rows:
        setting, _, seed = r["variant"].partition(", defend.seed ")
        lost = float(r["badnet_clean_accuracy_test"]) - float(r["clean_accuracy_test"])
        met = float(r["attack_success_rate_test"]) <= 1.0 and lost <= 1.0
        seeded.setdefault(setting, {}).setdefault(int(seed or 2020), {})[r["badnet"]] = met
    seeded = {k: v for k, v in seeded.items() if len(v) > 1}
    nets = sorted({n for by in seeded.values() for seed, met in by.items() if seed != 2020 for n in met})
    table = _cells(_block((ROOT / "docs" / "defenses.md").read_text(), "i_bau_seeds"))
    summary = {r[0]: r for r in table if r[0].endswith(": seeds met")}
    assert len(seeded) >= 2 and set(summary) == {f"{k}: seeds met" for k in seeded}
    for setting, by in seeded.items():
        cells, runs, total = summary[f"{setting}: seeds met"], 0, 0
        for i, net in enumerate(nets):
            if all(net in met for met in by.values()):
                count = 0
                for met in by.values():
                    count += met[net]
                assert cells[2 + i] == f"{count} of {len(by)}", (setting, net)
                runs, total = runs + count, total + len(by)
            else:
                assert cells[2 + i] == "", (setting, net)
        assert cells[-1].startswith(f"{runs} of {total} runs"), setting
