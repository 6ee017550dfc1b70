"""`totes report`: the dashboard notebook, executed against a warehouse the real pipeline built,
draws numbers that agree with plain SQL on the *source* (totesys); on an empty or half-built
warehouse it says so instead of failing; the HTML report and the dbt docs site work in a real
browser (headless Chromium).

The pipeline runs once per module: seed totesys → cycle → change some orders and payments in
the source → cycle again → report. The second cycle makes the warehouse hold several versions of
some rows, so the comparison also proves the analyses read the current state, not the history.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from infra.local.stack import PG_PORT, PG_SUPERUSER, REGION
from publish import marts
from runtime import db
from runtime.config import Settings

# One worker runs the whole module. Its fixtures are session-scoped, not module-scoped: xdist
# interleaves other modules' tests on that worker, and a module fixture is torn down (and
# rebuilt, two pipeline cycles) each time the worker moves between modules.
pytestmark = pytest.mark.xdist_group(name="report")

ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT = ROOT / "dbt_warehouse"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ENSURE_CHROMIUM = ROOT / "tests" / "support" / "ensure_chromium.sh"
MARTS = marts.TABLES
# dbt-docs' own page (dbt-core 1.11) has `<img src="{{ getIcon(...) }}">` in its tree template
# (src instead of ng-src) and a favicon link left as `${require('./assets/favicons/...')}`, so the
# browser requests those literal URLs: harmless, not ours, ignored by name only.
UPSTREAM_BUGS = ("getIcon(item.type", "require('./assets/favicons/")
CHARTS = (
    "sales_by_month_and_currency",
    "top_designs",
    "top_counterparties",
    "sales_by_staff_and_department",
    "deliveries_by_city_and_country",
    "outstanding_payments",
    "purchase_spend_by_supplier",
)


# --- fixtures: one loaded warehouse and one report per module --------------------------------


@dataclass
class Loaded:
    settings: Settings
    env: dict[str, str]
    totesys_dsn: str

    def totesys(self) -> db.pg8000.native.Connection:
        return db.connect(self.totesys_dsn)


@pytest.fixture(scope="session")
def loaded(stack) -> Iterator[Loaded]:
    """A seeded totesys and a warehouse built from it by two real pipeline cycles."""
    tag = uuid.uuid4().hex[:10]
    sock = str(stack.socket_dir)
    names = (f"totesys_{tag}", f"warehouse_{tag}")
    admin = db.connect(f"postgresql://{PG_SUPERUSER}@/postgres?host={sock}&port={PG_PORT}")
    for name in names:
        admin.run(f"create database {db.quote_ident(name)}")
    stack_env = stack.env()
    settings = Settings(
        ingestion_bucket=f"ingestion-{tag}",
        processed_bucket=f"processed-{tag}",
        totesys_dsn=f"postgresql://{PG_SUPERUSER}@/{names[0]}?host={sock}&port={PG_PORT}",
        warehouse_dsn=f"postgresql://{PG_SUPERUSER}@/{names[1]}?host={sock}&port={PG_PORT}",
        alert_topic_arn=stack_env.get("ALERT_TOPIC_ARN"),
        aws_endpoint_url=stack_env["AWS_ENDPOINT_URL"],
        region=REGION,
    )
    s3 = settings.client("s3")
    for bucket in (settings.ingestion_bucket, settings.processed_bucket):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    env = {
        **os.environ,
        "TOTESYS_DSN": settings.totesys_dsn or "",
        "WAREHOUSE_DSN": settings.warehouse_dsn or "",
        "INGESTION_BUCKET": settings.ingestion_bucket,
        "PROCESSED_BUCKET": settings.processed_bucket,
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "WAREHOUSE_HOST": sock,
        "WAREHOUSE_PORT": str(PG_PORT),
        "WAREHOUSE_USER": PG_SUPERUSER,
        "WAREHOUSE_PASSWORD": "",
        "WAREHOUSE_DB": names[1],
    }
    from infra.local.totesys.seed import seed

    source = db.connect(settings.totesys_dsn or "")
    seed(source, scale=0.05, seed=11)
    _cycle(settings)
    _change_source(source)
    time.sleep(3)  # the extract reads up to a horizon 1 s behind the clock (ingest/watermark.py)
    _cycle(settings)
    source.close()
    yield Loaded(settings, env, settings.totesys_dsn or "")
    for name in names:
        admin.run(f"drop database if exists {db.quote_ident(name)} with (force)")
    admin.close()


def _cycle(settings: Settings) -> None:
    from totes import cycle

    try:
        steps = cycle.default_steps(skip_publish=True)  # the report needs the marts only
    except TypeError:
        steps = cycle.default_steps()
    result = cycle.run_cycle(settings, steps=steps)
    assert result.ok, result.describe()


def _change_source(conn: db.pg8000.native.Connection) -> None:
    """What the business does between cycles: orders amended, payments made."""
    conn.run(
        "update sales_order set units_sold = units_sold + 1000, "
        "last_updated = localtimestamp(3) where sales_order_id % 7 = 0"
    )
    conn.run(
        "update payment set paid = true, last_updated = localtimestamp(3) "
        "where not paid and payment_id % 3 = 0"
    )


@pytest.fixture(scope="session")
def report(loaded: Loaded, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    done = _totes_report(loaded.env, out)
    assert done.returncode == 0, done.stderr
    assert f"report: {out / 'report.html'}" in done.stdout
    return out


def _totes_report(env: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "totes.cli", "report", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _source(loaded: Loaded, sql: str) -> pd.DataFrame:
    conn = loaded.totesys()
    try:
        rows = conn.run(sql)
        frame = pd.DataFrame(rows, columns=[c["name"] for c in conn.columns])
    finally:
        conn.close()
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, Decimal)).any():
            frame[column] = frame[column].astype(float)
    return frame


def _chart_data(report: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(report / "data" / f"{name}.csv", keep_default_na=False)


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def _summary(report: Path) -> dict:
    return json.loads((report / "report.json").read_text())


def _headline(report: Path, name: str) -> str:
    return next(c["headline"] for c in _summary(report)["charts"] if c["name"] == name)


# --- the report's outputs ----------------------------------------------------------------------


@pytest.mark.slow
def test_report_draws_every_question_as_png_with_its_data(report: Path):
    summary = _summary(report)
    assert summary["status"] == "ok"
    assert summary["warnings"] == []
    states = {c["name"]: c["state"] for c in summary["charts"]}
    assert states == dict.fromkeys(CHARTS, "drawn")
    for name in CHARTS:
        png = report / "charts" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(_chart_data(report, name)) > 0
        assert _headline(report, name)


@pytest.mark.slow
def test_html_report_is_self_contained_with_code_hidden(report: Path):
    html = (report / "report.html").read_text()
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == len(CHARTS)
    assert "<script src=" not in html  # no CDN (require.js, MathJax): it opens offline
    assert "board.ask(" not in html  # inputs excluded
    for name in CHARTS:
        assert _headline(report, name).split(" — ")[0] in html.replace("&#39;", "'")


@pytest.mark.slow
def test_sales_by_month_and_currency_match_the_source(report: Path, loaded: Loaded):
    drawn = _chart_data(report, "sales_by_month_and_currency")
    source = _source(
        loaded,
        """select extract(year from s.created_at)::int as year,
                  extract(month from s.created_at)::int as month, c.currency_code,
                  count(*) as orders, sum(s.units_sold) as units_sold,
                  sum(s.units_sold * s.unit_price) as sales_value
           from sales_order s join currency c using (currency_id)
           group by 1, 2, 3 order by 1, 2, 3""",
    )
    got = drawn[["year", "month", "currency_code", "orders", "units_sold", "sales_value"]]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), source, check_dtype=False)
    latest = source[(source.year == source.year.max())]
    latest = latest[latest.month == latest.month.max()]
    assert f"from {int(latest.orders.sum()):,} orders" in _headline(
        report, "sales_by_month_and_currency"
    )


@pytest.mark.slow
def test_top_designs_match_the_source(report: Path, loaded: Loaded):
    drawn = _chart_data(report, "top_designs")
    source = _source(
        loaded,
        """select d.design_id, d.design_name, count(*) as orders, sum(s.units_sold) as units_sold
           from sales_order s join design d using (design_id)
           group by 1, 2 order by units_sold desc, design_id limit 10""",
    )
    got = drawn[["design_id", "design_name", "orders", "units_sold"]]
    pd.testing.assert_frame_equal(got, source, check_dtype=False)
    best = source.iloc[0]
    assert _headline(report, "top_designs").startswith(
        f"Top design: {best.design_name} (#{best.design_id})"
    )


@pytest.mark.slow
def test_top_counterparties_match_the_source(report: Path, loaded: Loaded):
    drawn = _chart_data(report, "top_counterparties")
    source = _source(
        loaded,
        """select cp.counterparty_id, cp.counterparty_legal_name, a.country,
                  count(*) as orders, sum(s.units_sold) as units_sold
           from sales_order s join counterparty cp using (counterparty_id)
           join address a on a.address_id = cp.legal_address_id
           group by 1, 2, 3 order by units_sold desc, counterparty_id limit 10""",
    )
    columns = ["counterparty_id", "counterparty_legal_name", "counterparty_legal_country"]
    got = drawn[[*columns, "orders", "units_sold"]]
    source = source.rename(columns={"country": "counterparty_legal_country"})
    pd.testing.assert_frame_equal(got, source, check_dtype=False)


@pytest.mark.slow
def test_sales_by_staff_and_department_match_the_source(report: Path, loaded: Loaded):
    drawn = _chart_data(report, "sales_by_staff_and_department")
    source = _source(
        loaded,
        """select st.staff_id, st.first_name || ' ' || st.last_name as staff_name,
                  coalesce(d.department_name, '') as department_name,
                  count(*) as orders, sum(s.units_sold) as units_sold
           from sales_order s join staff st using (staff_id)
           left join department d using (department_id)
           group by 1, 2, 3 order by units_sold desc, staff_id""",
    )
    got = drawn[["staff_id", "staff_name", "department_name", "orders", "units_sold"]]
    pd.testing.assert_frame_equal(got, source, check_dtype=False)


@pytest.mark.slow
def test_deliveries_by_city_and_country_match_the_source(report: Path, loaded: Loaded):
    drawn = _chart_data(report, "deliveries_by_city_and_country")
    source = _source(
        loaded,
        """select a.country, a.city, count(*) as orders, sum(s.units_sold) as units_sold
           from sales_order s join address a on a.address_id = s.agreed_delivery_location_id
           group by 1, 2 order by units_sold desc, country, city limit 15""",
    )
    got = drawn[["country", "city", "orders", "units_sold"]]
    pd.testing.assert_frame_equal(got, source, check_dtype=False)
    total_countries = _source(
        loaded,
        """select count(distinct a.country) as n from sales_order s
           join address a on a.address_id = s.agreed_delivery_location_id""",
    ).n[0]
    assert f"{total_countries:,} countries" in _headline(report, "deliveries_by_city_and_country")


@pytest.mark.slow
def test_outstanding_payments_match_the_source(report: Path, loaded: Loaded):
    drawn = _chart_data(report, "outstanding_payments")
    source = _source(
        loaded,
        """select pt.payment_type_name::text, c.currency_code, count(*) as payments,
                  sum(p.payment_amount) as amount_outstanding
           from payment p join payment_type pt using (payment_type_id)
           join currency c using (currency_id)
           where not p.paid group by 1, 2 order by 1, 2""",
    )
    got = drawn[["payment_type_name", "currency_code", "payments", "amount_outstanding"]]
    pd.testing.assert_frame_equal(got, source, check_dtype=False)
    unpaid = int(source.payments.sum())
    assert _headline(report, "outstanding_payments").startswith(
        f"Outstanding: {unpaid:,} unpaid payments"
    )


@pytest.mark.slow
def test_purchase_spend_by_supplier_matches_the_source(report: Path, loaded: Loaded):
    drawn = _chart_data(report, "purchase_spend_by_supplier")
    source = _source(
        loaded,
        """select cp.counterparty_id, c.currency_code, count(*) as purchase_orders,
                  sum(po.item_quantity * po.item_unit_price) as spend
           from purchase_order po join counterparty cp using (counterparty_id)
           join currency c using (currency_id) group by 1, 2""",
    )
    keyed = source.set_index(["counterparty_id", "currency_code"])
    for row in drawn.itertuples():
        expected = keyed.loc[(row.counterparty_id, row.currency_code)]
        assert row.purchase_orders == expected.purchase_orders
        assert row.spend == pytest.approx(expected.spend, abs=0.005)
    orders = source.groupby("counterparty_id").purchase_orders.sum()
    assert drawn.groupby("counterparty_id").purchase_orders.sum().min() >= orders.nlargest(10).min()


@pytest.mark.slow
def test_the_warehouse_really_holds_history_the_report_ignores(loaded: Loaded):
    """Guards the comparisons above: they only prove 'current state' if versions exist."""
    conn = db.connect(loaded.settings.warehouse_dsn or "")
    versions, orders = conn.run(
        "select count(*), count(distinct sales_order_id) from marts.fact_sales_order"
    )[0]
    conn.close()
    assert versions > orders


# --- an empty, half-built or missing warehouse -----------------------------------------------


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("", "no `marts` schema"),
        ("create schema marts", "only partly built"),
    ],
)
def test_report_on_an_unbuilt_warehouse_says_so_and_exits_0(isolated, tmp_path, setup, says):
    if setup:
        conn = isolated.warehouse()
        conn.run(setup)
        conn.close()
    done = _totes_report(isolated.env(), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert says in done.stderr
    assert (tmp_path / "report.html").exists()
    assert says.replace("`", "") in _text((tmp_path / "report.html").read_text())
    summary = _summary(tmp_path)
    assert summary["status"] != "ok"
    assert {c["state"] for c in summary["charts"]} == {"skipped"}
    assert not list(tmp_path.glob("charts/*.png"))


def test_report_on_empty_facts_says_nothing_is_loaded(isolated, tmp_path):
    conn = isolated.warehouse()
    conn.run("create schema marts")
    for table in MARTS:
        conn.run(f"create table marts.{table} (id int)")
    conn.close()
    done = _totes_report(isolated.env(), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "every fact table is empty" in done.stderr
    assert _summary(tmp_path)["status"] == "empty"


def test_report_on_an_unreachable_warehouse_fails_clearly(tmp_path):
    env = {**os.environ, "WAREHOUSE_DSN": f"postgresql://nobody@/nowhere?host={tmp_path}&port=1"}
    done = _totes_report(env, tmp_path / "out")
    assert done.returncode == 2
    assert "the warehouse is unreachable" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_report_without_a_warehouse_configured_fails_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAREHOUSE_")}
    done = _totes_report(env, tmp_path / "out")
    assert done.returncode == 2
    assert "WAREHOUSE_DSN" in done.stderr
    assert "Traceback" not in done.stderr


# --- in a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not _chromium_runs():
        subprocess.run(["bash", str(ENSURE_CHROMIUM)], check=False, timeout=900)
    if not _chromium_runs():
        pytest.skip(f"{CHROMIUM} is not installed and tests/support/ensure_chromium.sh could not")
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed"
    )
    user_data = Path(os.environ.get("TMPDIR", "/tmp")) / f"chromium-{uuid.uuid4().hex[:8]}"
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()
    shutil.rmtree(user_data, ignore_errors=True)


def _chromium_runs() -> bool:
    try:
        return (
            subprocess.run(
                [str(CHROMIUM), "--version"], capture_output=True, timeout=30, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


class _Page:
    """A page that records console errors and failed requests."""

    def __init__(self, context) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self._failed(r.url))
        self.page.on("response", lambda r: self._failed(r.url) if r.status >= 400 else None)

    def _console(self, message) -> None:
        # "Failed to load resource" is reported with its URL through _failed, which knows
        # which ones to forgive.
        text = message.text
        if message.type != "error" or "Failed to load resource" in text:
            return
        if not any(bug in unquote(text) for bug in UPSTREAM_BUGS):
            self.errors.append(text)

    def _failed(self, url: str) -> None:
        if url.endswith("favicon.ico") or any(bug in unquote(url) for bug in UPSTREAM_BUGS):
            return
        self.errors.append(f"failed to load {url}")


@pytest.fixture(scope="session")
def docs_site(loaded: Loaded, tmp_path_factory) -> Path:
    """`dbt docs generate --static` against the loaded warehouse (what `make docs` runs)."""
    target = tmp_path_factory.mktemp("dbt-docs")
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "docs",
            "generate",
            "--static",
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(target),
            "--log-path",
            str(target / "logs"),
        ],
        env=loaded.env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return target


@pytest.fixture(scope="session")
def docs_server(docs_site: Path) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(docs_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.browser
@pytest.mark.slow
def test_html_report_shows_every_chart_in_chromium(browser, report: Path, tmp_path):
    tab = _Page(browser)
    tab.page.goto((report / "report.html").as_uri(), wait_until="load")
    tab.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    sizes = tab.page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(sizes) == len(CHARTS)
    assert all(complete and width > 0 and height > 0 for complete, width, height in sizes)
    text = tab.page.inner_text("body")
    assert "Top design:" in text
    assert tab.errors == []


def _mart_columns(docs_site: Path) -> dict[str, dict[str, str]]:
    manifest = json.loads((docs_site / "manifest.json").read_text())
    found = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["name"] in MARTS:
            found[node["name"]] = {c: v["description"] for c, v in node["columns"].items()}
    return found


@pytest.mark.browser
@pytest.mark.slow
def test_docs_site_served_on_loopback_lists_every_mart_with_column_docs(
    browser, docs_server: str, docs_site: Path, tmp_path
):
    columns = _mart_columns(docs_site)
    assert set(columns) == set(MARTS)
    tab = _Page(browser)
    tab.page.goto(f"{docs_server}/index.html", wait_until="networkidle")
    _wait_for_text(tab.page, "fact_sales_order", everywhere=True)
    tree = tab.page.evaluate("document.body.textContent")  # the nav tree, folders collapsed
    assert all(mart in tree for mart in MARTS)
    for mart in MARTS:
        tab.page.goto(
            f"{docs_server}/index.html#!/model/model.totes_warehouse.{mart}",
            wait_until="networkidle",
        )
        _wait_for_text(tab.page, next(iter(columns[mart])))
        body = tab.page.inner_text("body")
        shown = _squash(tab.page.evaluate("document.body.textContent"))
        for column, description in columns[mart].items():
            assert column in body, f"{mart}.{column} missing from its docs page"
            assert description, f"{mart}.{column} has no description"
            assert _squash(_first_words(description)) in shown, f"{mart}.{column}'s description"
        tab.page.screenshot(path=str(tmp_path / f"docs-{mart}.png"), full_page=True)
    assert tab.errors == []


@pytest.mark.browser
@pytest.mark.slow
def test_docs_site_opens_from_a_file(browser, docs_site: Path, tmp_path):
    """`static_index.html` carries the manifest and catalog inside: no server needed."""
    tab = _Page(browser)
    url = (docs_site / "static_index.html").as_uri()
    tab.page.goto(f"{url}#!/model/model.totes_warehouse.fact_sales_order", wait_until="load")
    _wait_for_text(tab.page, "sales_record_id")
    tab.page.screenshot(path=str(tmp_path / "docs-static.png"), full_page=True)
    assert "units_sold" in tab.page.inner_text("body")
    assert tab.errors == []


def _wait_for_text(page, text: str, *, everywhere: bool = False) -> None:
    """Until the page shows `text` (or, `everywhere`, holds it even in collapsed elements)."""
    prop = "textContent" if everywhere else "innerText"
    page.wait_for_function(f"t => document.body.{prop}.includes(t)", arg=text, timeout=30_000)


def _squash(text: str) -> str:
    """Letters and digits only: compares text across markdown rendering and line wrapping."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _first_words(markdown: str) -> str:
    """The start of a description as the page shows it (markdown markup removed)."""
    text = markdown.replace("`", "").replace("*", "").split("\n")[0]
    return " ".join(text.split()[:4])
