"""The replication report (igkd.analysis.paper_numbers, verdict, replication; rule compare_paper):
the paper's numbers in one file that agrees with docs/reference-numbers.md, verdicts on
synthetic runs whose right answer is known, the headline claims, and the one line a run
that cannot be compared with the paper gets (the demo's digits)."""

import math
import re
import runpy
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as st

from igkd.analysis.paper_numbers import (
    COMPARABLE,
    MAX,
    MEAN,
    NUMBERS,
    SINGLE,
    TIME,
    comparability,
    load_numbers,
)
from igkd.analysis.replication import (
    NOT_RUN,
    NOT_TESTED,
    TIMING,
    IgkdResults,
    ReplicationSettings,
    pool_runs,
    replicate,
)
from igkd.analysis.replication_report import ReportPaths, markdown, write_not_comparable
from igkd.analysis.verdict import (
    HIGHER,
    INCONCLUSIVE,
    LOWER,
    REPRODUCED,
    Sample,
    prediction,
    verdict,
    welch,
)
from igkd.config import load_config
from igkd.io import InputError
from test_workflow import job_counts, snakemake

SETTINGS = ReplicationSettings(margin=0.5, alpha=0.05)
DIGITS = "not comparable: digits (the paper's numbers are CIFAR-10 at its settings)"


# ---- the numbers file agrees with docs/reference-numbers.md


def doc_section(text: str, heading: str) -> str:
    """The body of the `## heading...` section."""
    match = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, heading
    return match.group(1)


def doc_table(section: str) -> list[dict[str, str]]:
    """The first Markdown table of a section, as rows of header -> cell."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def by_key(numbers, section, quantity):
    return {(n.method, n.factor): n for n in numbers.section(section) if n.quantity == quantity}


def test_the_numbers_file_holds_the_reference_page_tables(repo):
    """Every number of docs/reference-numbers.md is in paper_numbers.yaml, with the same value
    (parsed from the page, so the two cannot drift apart), and nothing else is."""
    text = (repo / "docs/reference-numbers.md").read_text()
    numbers = load_numbers()
    assert "2506.14440" in numbers.citation and numbers.url.startswith("https://")

    teacher = re.search(r"accuracy \*\*([\d.]+) %\*\*", doc_section(text, "Teacher"))
    assert numbers.section("teacher")[0].value == float(teacher.group(1))
    imagenet = re.search(r"Teacher accuracy\s+is \*\*([\d.]+) %\*\*", doc_section(text, "ImageNet subset"))
    assert numbers.section("imagenet_subset")[0].value == float(imagenet.group(1))

    ablation = doc_section(text, "Ablation at 4.12x")
    assert re.search(r"(\d+) runs per method", ablation).group(1) == "10"
    means, maxima = by_key(numbers, "ablation", MEAN), by_key(numbers, "ablation", MAX)
    rows = doc_table(ablation)
    assert {r["method"] for r in rows} == {m for m, _ in means} == {m for m, _ in maxima}
    for r in rows:
        mean, top = means[(r["method"], 4.12)], maxima[(r["method"], 4.12)]
        assert (mean.value, mean.sd, top.value) == (float(r["mean"]), float(r["sd"]), float(r["max"]))
        assert mean.n == 10 and mean.drop == 5 and mean.fraction == 1.0 and not mean.sd_approx
        assert mean.student == "mobilenetv2-drop5"

    montecarlo = doc_section(text, "Monte Carlo at 4.12x")
    assert re.search(r"(\d+) runs per method", montecarlo).group(1) == "60"
    means = by_key(numbers, "montecarlo", MEAN)
    rows = doc_table(montecarlo)
    assert {r["method"] for r in rows} == {m for m, _ in means}
    for r in rows:
        mean = means[(r["method"], 4.12)]
        approx = r["sd"].startswith("about ")
        assert (mean.value, mean.sd, mean.sd_approx) == (
            float(r["mean"]),
            float(r["sd"].removeprefix("about ")),
            approx,
        )
        assert mean.n == 60 and mean.fraction == 0.8
    assert by_key(numbers, "montecarlo", MAX) == {}

    singles = by_key(numbers, "compression", SINGLE)
    rows = doc_table(doc_section(text, "Compression sweep"))
    cells = {(m, float(r["factor"])): float(r[m]) for r in rows for m in r if m != "factor"}
    assert cells == {key: n.value for key, n in singles.items()} and len(cells) == 32

    times = doc_table(doc_section(text, "Inference time"))
    assert [(t["model"], float(t["factor"]), float(t["ms per batch of 64"])) for t in times] == [
        (n.method, n.factor, n.value) for n in numbers.section("inference")
    ]
    assert {n.quantity for n in numbers.section("inference")} == {TIME}
    assert len(numbers.numbers) == 1 + 16 + 4 + 32 + 9 + 1


def test_each_cell_names_the_drop_of_the_papers_factor():
    """The drop given with each number is the student of the paper's factor (igkd.models),
    igkd's mobilenetv2-drop<drop>; the teacher's numbers name no student."""
    from igkd.models import compression_factor

    numbers = load_numbers()
    for n in numbers.numbers:
        if n.drop is not None:
            assert round(compression_factor(n.drop), 2) == n.factor, n
            assert n.student == f"mobilenetv2-drop{n.drop}", n
        else:
            assert n.student is None, n
    assert numbers.cell("ablation") == ("mobilenetv2-drop5", 1.0)
    assert numbers.cell("montecarlo") == ("mobilenetv2-drop5", 0.8)


def test_a_malformed_numbers_file_is_one_line_naming_the_key(tmp_path):
    doc = yaml.safe_load(NUMBERS.read_text())
    doc["ablation"]["methods"]["KD"]["sd"] = -0.4
    bad = tmp_path / "numbers.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match=r"numbers.yaml: ablation\.methods\.KD\.sd: expected a positive number"):
        load_numbers(bad)
    doc = yaml.safe_load(NUMBERS.read_text())
    doc["compression"]["factors"][2]["accuracy"] = [90.0, 91.0]
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match=r"compression\.factors\[2\]\.accuracy: expected 4 numbers"):
        load_numbers(bad)


# ---- when the comparison means something


def test_only_cifar10_at_the_papers_settings_is_comparable(repo, tmp_path):
    numbers = load_numbers()
    assert comparability(load_config(repo / "config.yaml"), numbers).param() == COMPARABLE
    demo = comparability(load_config(repo / "config.yaml", repo / "profiles/demo/demo.yaml"), numbers)
    assert not demo.comparable and demo.reason == DIGITS
    short = tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump({"students": {"epochs": 50, "lr": 0.01}}))
    other = comparability(load_config(repo / "config.yaml", short), numbers)
    assert other.reason == (
        "not comparable: students.epochs is 50, the paper's 100 (the paper's numbers are CIFAR-10 at its settings)"
    )


# ---- the statistics behind a verdict


def test_welch_from_summary_statistics_is_welch_on_the_runs():
    rng = np.random.default_rng(3)
    x, y = rng.normal(91, 0.3, 7), rng.normal(91.4, 0.5, 12)
    evidence = welch(Sample.of(x), Sample.of(y))
    direct = st.ttest_ind(x, y, equal_var=False)
    assert evidence.p_diff == pytest.approx(direct.pvalue) and evidence.df == pytest.approx(direct.df)
    ci = direct.confidence_interval(0.95)
    assert evidence.interval(0.95) == pytest.approx((ci.low, ci.high))
    assert welch(Sample(91.0, math.nan, 1), Sample(91.0, 0.3, 10)) is None


@pytest.mark.parametrize("diff", [-0.6, -0.2, 0.0, 0.15, 0.45])
def test_tost_rejects_exactly_when_the_1_minus_2_alpha_interval_is_inside_the_margin(diff):
    evidence = welch(Sample(91.0 + diff, 0.3, 20), Sample(91.0, 0.3, 10))
    low, high = evidence.interval(1 - 2 * SETTINGS.alpha)
    inside = -SETTINGS.margin < low and high < SETTINGS.margin
    assert (evidence.p_tost(SETTINGS.margin) < SETTINGS.alpha) == inside


def test_a_paper_single_run_on_the_prediction_interval_edge_has_p_alpha():
    igkd = Sample(91.0, 0.3, 10)
    edge = 91.0 + st.t.ppf(0.975, 9) * 0.3 * math.sqrt(1 + 1 / 10)
    evidence = prediction(igkd, edge)
    assert evidence.test == "prediction" and evidence.p_diff == pytest.approx(0.05)
    assert prediction(Sample(91.0, math.nan, 1), 90.0) is None  # one run against one run


def test_verdict_rules():
    assert verdict(-0.1, 0.01, 0.001, 0.05) == REPRODUCED  # a real but negligible difference reproduces
    assert verdict(-1.2, 0.001, 0.9, 0.05) == LOWER
    assert verdict(1.2, 0.001, 0.9, 0.05) == HIGHER
    assert verdict(-0.4, 0.2, 0.3, 0.05) == INCONCLUSIVE
    assert verdict(-0.4, math.nan, math.nan, 0.05) == INCONCLUSIVE


# ---- verdicts on synthetic CIFAR-like runs whose right answer is known


def exact(mean: float, sd: float, n: int, seed: int) -> np.ndarray:
    """n values with exactly this mean and sd (ddof=1)."""
    z = np.random.default_rng(seed).standard_normal(n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1) if n > 1 else np.array([mean])


def synthetic_runs(shift=None, runs=None, compression_runs=1, leave_out=()) -> pd.DataFrame:
    """A runs table of the paper's cells drawn to the paper's means and sds: `shift` moves a
    (section, method) group by that many points, `runs` changes its number of runs."""
    shift, runs = shift or {}, runs or {}
    numbers, rows = load_numbers(), []
    for i, n in enumerate(numbers.numbers):
        key = (n.section, n.method)
        if n.student is None or n.quantity in (MAX, TIME) or key in leave_out:
            continue
        if n.quantity == MEAN:
            values = exact(n.value + shift.get(key, 0.0), n.sd, runs.get(key, n.n), seed=i)
        else:  # a compression cell; run 0 of mobilenetv2-drop5 is the ablation's (added there)
            values = exact(n.value + shift.get(key, 0.0), 0.3, compression_runs, seed=i)
            if n.student == "mobilenetv2-drop5":
                continue
        sha = "full" if n.fraction == 1.0 else None
        for run, value in enumerate(values):
            rows.append(
                {
                    "method": n.method,
                    "student": n.student,
                    "factor": n.factor,
                    "fraction": n.fraction,
                    "run": run,
                    "seed": run,
                    "subsample_sha": sha or f"subsample{run}",
                    "test_acc": float(value),
                }
            )
    return pd.DataFrame(rows)


def report_for(runs: pd.DataFrame, teacher=93.8, imagenet=None):
    return replicate(load_numbers(), IgkdResults(pool_runs([runs]), teacher, imagenet), SETTINGS)


def row(report, section, method, quantity=MEAN, factor=None):
    rows = report.rows
    at = (rows["section"] == section) & (rows["method"] == method) & (rows["quantity"] == quantity)
    if factor is not None:
        at &= rows["factor"] == factor
    (index,) = np.flatnonzero(at)
    return rows.iloc[index]


def test_runs_that_match_the_paper_reproduce_it():
    report = report_for(synthetic_runs())
    for method in ("Student", "KD_IG", "IG_AT"):
        got = row(report, "ablation", method)
        assert got["verdict"] == REPRODUCED and got["igkd_n"] == 10 and got["test"] == "welch"
        assert got["diff"] == pytest.approx(0.0, abs=1e-9)
    for method in ("Student", "KD", "KD_IG", "KD_IG_AT"):
        assert row(report, "montecarlo", method)["verdict"] == REPRODUCED
    assert "approximate" in row(report, "montecarlo", "Student")["note"]
    # the paper's own sd 0.44 over 10 runs is too wide to show KD within 0.5 pp after Holm
    assert row(report, "ablation", "KD")["verdict"] == INCONCLUSIVE


def test_runs_clearly_below_or_above_the_paper_are_lower_or_higher():
    report = report_for(synthetic_runs(shift={("ablation", "Student"): -1.5, ("montecarlo", "KD_IG"): +1.0}))
    lower = row(report, "ablation", "Student")
    assert lower["verdict"] == LOWER and lower["diff"] == pytest.approx(-1.5)
    assert lower["diff_high"] < 0 and lower["p_diff_holm"] < SETTINGS.alpha
    assert row(report, "montecarlo", "KD_IG")["verdict"] == HIGHER
    assert row(report, "ablation", "KD_IG")["verdict"] == REPRODUCED  # the others are untouched


@pytest.mark.parametrize("n, note", [(2, ""), (1, "one igkd run: no spread to test")])
def test_too_few_runs_are_inconclusive_at_this_n(n, note):
    got = row(report_for(synthetic_runs(runs={("ablation", "KD_IG"): n})), "ablation", "KD_IG")
    assert got["verdict"] == INCONCLUSIVE and got["igkd_n"] == n and note in got["note"]
    if n == 2:  # a test was made; it cannot decide
        assert got["p_tost_holm"] > SETTINGS.alpha and got["p_diff_holm"] > SETTINGS.alpha


def test_missing_cells_maxima_times_and_teachers_get_no_test_verdict():
    report = report_for(synthetic_runs(leave_out={("montecarlo", "KD")}))
    assert row(report, "montecarlo", "KD")["verdict"] == NOT_RUN
    assert "experiments.montecarlo" in row(report, "montecarlo", "KD")["note"]
    top = row(report, "ablation", "KD_IG", MAX)
    assert top["verdict"] == NOT_TESTED and top["igkd_n"] == 10
    assert set(report.rows.loc[report.rows["section"] == "inference", "verdict"]) == {TIMING}
    teacher = row(report, "teacher", "teacher", SINGLE)
    assert teacher["verdict"] == INCONCLUSIVE and teacher["diff"] == pytest.approx(93.8 - 93.91)
    assert row(report, "imagenet_subset", "teacher", SINGLE)["verdict"] == NOT_RUN
    assert row(report_for(synthetic_runs(), imagenet=66.0), "imagenet_subset", "teacher", SINGLE)["igkd_value"] == 66.0


def test_paper_single_runs_need_igkd_runs_at_the_cell():
    """One run against the paper's one run settles nothing; with the ablation's 10 runs of
    mobilenetv2-drop5 the 4.12x cells are tested against a prediction interval."""
    report = report_for(synthetic_runs(shift={("compression", "KD"): -5.0}))
    one = row(report, "compression", "KD", SINGLE, factor=28.97)
    assert one["verdict"] == INCONCLUSIVE and one["igkd_n"] == 1 and one["diff"] == pytest.approx(-5.0)
    pooled = row(report, "compression", "KD_IG", SINGLE, factor=4.12)
    assert pooled["test"] == "prediction" and pooled["igkd_n"] == 10
    # the paper's 4.12x single runs lie about 1.4 pp below its own ablation means
    assert pooled["diff"] == pytest.approx(92.02 - 90.66) and pooled["verdict"] in (HIGHER, INCONCLUSIVE)
    several = report_for(synthetic_runs(compression_runs=6, shift={("compression", "KD"): -5.0}))
    assert row(several, "compression", "KD", SINGLE, factor=28.97)["verdict"] == LOWER


def test_the_headline_claims_are_retested_on_igkds_runs():
    report = report_for(synthetic_runs())
    claims = report.claims.set_index(["claim", "section"])
    kd_ig = claims.loc[("KD_IG higher than Student, p < 0.001", "montecarlo")]
    assert kd_ig["verdict"] == "holds" and kd_ig["test"] == "paired" and kd_ig["p_holm"] < 0.001
    reversed_ = report_for(synthetic_runs(shift={("ablation", "KD_IG"): -2.0})).claims
    first = reversed_[(reversed_["section"] == "ablation") & (reversed_["baseline"] == "Student")].iloc[0]
    assert first["verdict"] == "reversed" and first["direction"] == "lower"
    few = report_for(synthetic_runs(runs={("montecarlo", "KD_IG"): 1, ("montecarlo", "KD"): 1})).claims
    assert set(few.loc[few["section"] == "montecarlo", "verdict"]) == {INCONCLUSIVE}
    missing = report_for(synthetic_runs(leave_out={("ablation", "KD")})).claims
    assert missing.loc[(missing["section"] == "ablation") & (missing["baseline"] == "KD"), "verdict"].item() == NOT_RUN


def test_the_report_states_its_rules_margin_and_multiplicity():
    text = markdown(report_for(synthetic_runs()))
    assert "±0.5 pp" in text and "TOST" in text and "Holm" in text
    tested = re.search(r"Multiplicity: (\d+) numbers are tested", text)
    assert int(tested.group(1)) == 8 + 4 + 4  # ablation and Monte Carlo means, the 4.12x sweep cells
    for title in ("## Ablation", "## Monte Carlo", "## Compression sweep", "## Inference time", "## Teacher"):
        assert title in text


# ---- the rule's script, and the rule in the DAG


def run_script(repo, tmp_path, params: dict, inputs: dict) -> ReportPaths:
    """workflow/scripts/compare_paper.py with a stand-in `snakemake` object."""
    out = {
        name: str(tmp_path / "out" / f)
        for name, f in (
            ("comparison", "comparison.csv"),
            ("claims", "claims.csv"),
            ("markdown", "comparison.md"),
            ("pdf", "fig.pdf"),
            ("png", "fig.png"),
        )
    }
    files = SimpleNamespace(**inputs, get=inputs.get)
    fake = SimpleNamespace(input=files, output=SimpleNamespace(**out), params=SimpleNamespace(**params), log=[None])
    runpy.run_path(str(repo / "workflow/scripts/compare_paper.py"), init_globals={"snakemake": fake})
    return ReportPaths(out["comparison"], out["claims"], out["markdown"]), out


def test_a_run_that_cannot_be_compared_writes_one_line(repo, tmp_path):
    paths, out = run_script(repo, tmp_path, {"comparable": DIGITS, "replication": None, "code": ""}, {})
    assert (tmp_path / "out/comparison.md").read_text() == DIGITS + "\n"
    for csv in (paths.comparison, paths.claims):
        assert pd.read_csv(csv).to_dict("list") == {"verdict": [DIGITS]}
    assert all((tmp_path / "out" / f).stat().st_size > 0 for f in ("fig.pdf", "fig.png"))
    write_not_comparable("not comparable: x", ReportPaths(*(tmp_path / f for f in ("a.csv", "b.csv", "c.md"))))
    assert (tmp_path / "c.md").read_text().splitlines() == ["not comparable: x"]


def test_the_script_compares_synthetic_cifar_runs(repo, tmp_path):
    runs = synthetic_runs()
    tables = []
    for name, fraction in (("ablation", 1.0), ("montecarlo", 0.8)):
        path = tmp_path / f"{name}.csv"
        runs[np.isclose(runs["fraction"], fraction)].to_csv(path, index=False)
        tables.append(str(path))
    (tmp_path / "teacher.json").write_text('{"test_acc": 93.7}')
    inputs = {"runs": tables, "teacher_metrics": str(tmp_path / "teacher.json")}
    params = {"comparable": COMPARABLE, "replication": {"margin": 0.5, "alpha": 0.05}, "code": ""}
    paths, _ = run_script(repo, tmp_path, params, inputs)
    rows = pd.read_csv(paths.comparison)
    reproduced = rows.loc[rows["verdict"] == REPRODUCED, ["section", "method"]]
    assert len(rows) == 63 and set(reproduced["section"]) == {"ablation", "montecarlo"} and len(reproduced) == 11
    assert "# Does igkd reproduce the paper?" in (tmp_path / "out/comparison.md").read_text()
    claims = pd.read_csv(paths.claims)
    assert len(claims) == 4 and set(claims["student"]) == {"mobilenetv2-drop5"}
    # the paper's drops as igkd's student ids; the teachers name none
    assert "drop" not in rows.columns and "drop" not in claims.columns
    named = rows.set_index(["section", "method", "quantity", "factor"])["student"]
    assert named[("compression", "KD", SINGLE, 28.97)] == "mobilenetv2-drop11"
    assert named[("inference", "student", TIME, 1121.71)] == "mobilenetv2-drop17"
    assert rows.loc[rows["method"] == "teacher", "student"].isna().all()


def test_the_paper_target_on_the_demo_is_one_job_reading_nothing_it_must_wait_for(workdir):
    code, out = snakemake(workdir, "-n", "--quiet", "rules", "--configfile", "config.yaml", "profiles/demo/demo.yaml")
    assert code == 0, out
    assert job_counts(out)["compare_paper"] == 1  # part of `all`
    code, out = snakemake(
        workdir, "paper", "-n", "--quiet", "rules", "--configfile", "config.yaml", "profiles/demo/demo.yaml"
    )
    assert code == 0, out
    assert job_counts(out) == {"compare_paper": 1, "paper": 1}


def test_on_the_papers_settings_the_comparison_waits_for_every_experiments_runs(workdir):
    """config.yaml (CIFAR-10 at the paper's settings): `paper` reads the three experiments'
    runs tables and the teacher, so it is built after them."""
    code, out = snakemake(workdir, "paper", "-n", "--quiet", "rules")
    assert code == 0, out
    counts = job_counts(out)
    assert counts["compare_paper"] == 1 and counts["collect_runs"] == 3 and counts["train_teacher"] == 1
    assert counts["distill_student"] == 80 + 240 + 28  # the ablation, Monte Carlo and compression students
    assert "run_stats" not in counts  # it tests from the runs, not from stats/
