"""Works offline: headless Chromium visits every menu entry as Admin and fails on a console
error, a page error, a server error or any request that leaves the server (CDN, web fonts,
Google Charts...).

The server is the test app on a real socket (werkzeug, background thread). Chromium reaches it
under a name that is not loopback (HOST, mapped to 127.0.0.1 inside Chromium only), as a user on
the LAN would: front-end code that only phones home for non-local hosts is caught too. Every
other host name fails to resolve inside Chromium, so the test never touches the network even on
a connected CI machine. Screenshots go to a pytest temp dir, printed with `-s`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask, got_request_exception, request
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Request,
    Response,
    sync_playwright,
)
from sqlalchemy import select
from werkzeug.serving import make_server

from app.customers import contact_service, customer_service
from app.extensions import db
from app.orders import move_order, order_service, submit_order
from customfields.definitions import CustomField
from models.approvals import ApprovalFlow, ApprovalStep
from models.customers import Contact, Customer
from models.orders import Order, OrderLine
from tests.conftest import PASSWORD, unique_mobile, unique_name, user

CHROMIUM = Path("/usr/bin/chromium")
HOST = "keguan.test"
LOCAL_HOSTS = {HOST, "127.0.0.1", "localhost"}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE localhost",
]
#: Navbar links: the entries of each category's dropdown (left menu and the user menu) and
#: top-level entries without a dropdown. See flask_appbuilder's navbar_menu.html/navbar_right.html.
MENU_LINKS = ".navbar-nav .dropdown-menu a[href], .navbar-nav > li > a[href]:not(.dropdown-toggle)"


@dataclass
class Server:
    """The app on a socket, and the exceptions it raised while serving."""

    url: str
    exceptions: list[str] = field(default_factory=list)


@dataclass
class Monitor:
    """Collects what breaks the offline rule or shows a fault, tagged with the page visited."""

    server: Server
    current: str = "(start)"
    problems: list[str] = field(default_factory=list)
    pending: set[Request] = field(default_factory=set)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", self._page_error)
        page.on("request", self._request)
        page.on("requestfinished", self._done)
        page.on("requestfailed", self._done)
        page.on("response", self._response)

    def settle(self, page: Page, quiet_ms: int = 150, timeout_ms: int = 15_000) -> None:
        """After `load`, wait until no request has been in flight for `quiet_ms` (Playwright's
        `networkidle` waits a fixed 500 ms, about as long again as a page takes to load here)."""
        page.wait_for_load_state("load")
        quiet = waited = 0
        while quiet < quiet_ms:
            if waited > timeout_ms:
                self.add(f"still loading after {timeout_ms} ms: {sorted(r.url for r in self.pending)}")
                return
            page.wait_for_timeout(25)
            waited += 25
            quiet = quiet + 25 if not self.pending else 0

    def add(self, problem: str) -> None:
        self.problems.append(f"{self.current}: {problem}")

    def report(self) -> str:
        lines = self.problems + [f"server exception: {exc}" for exc in self.server.exceptions]
        return "\n".join(lines)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.add(f"console error: {message.text} (at {message.location.get('url') or '?'})")

    def _page_error(self, error: Error) -> None:
        self.add(f"page error: {error.message}")

    def _request(self, request: Request) -> None:
        self.pending.add(request)
        if urlsplit(request.url).scheme in ("data", "blob", "about"):
            return
        if urlsplit(request.url).hostname not in LOCAL_HOSTS:
            self.add(f"outside request: {request.method} {request.url} ({request.resource_type})")

    def _done(self, request: Request) -> None:
        self.pending.discard(request)

    def _response(self, response: Response) -> None:
        if response.status >= 500:
            self.add(f"HTTP {response.status} for {response.url}")


@pytest.fixture(scope="module")
def server(app: Flask) -> Iterator[Server]:
    """Serve the session's app on 127.0.0.1 (a free port) for this module."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    running = Server(url=f"http://{HOST}:{httpd.server_port}")

    def record(sender: Flask, exception: BaseException, **extra: Any) -> None:
        running.exceptions.append(f"{request.full_path}: {exception!r}")

    got_request_exception.connect(record, app)
    thread = threading.Thread(target=httpd.serve_forever, name="browser-test-server", daemon=True)
    thread.start()
    try:
        yield running
    finally:
        httpd.shutdown()
        thread.join(timeout=5)
        httpd.server_close()
        got_request_exception.disconnect(record, app)


@pytest.fixture(scope="module")
def customer_id(app: Flask) -> int:
    """A few customers (one in 东营, with a contact) so lists, search and show pages have rows."""
    with app.app_context():
        admin = user("admin")
        first = Customer(
            name=unique_name("东营测试客户"),
            mobile=unique_mobile(),
            level="key",
            district_code=370502,
            street="西四路 1 号",
        )
        customer_service.save(db.session, first, admin)
        for prefix in ("烟台测试客户", "济南测试客户"):
            other = Customer(name=unique_name(prefix), mobile=unique_mobile())
            customer_service.save(db.session, other, admin)
        contact = Contact(customer_id=first.id, name="张三", mobile=unique_mobile(), title="采购经理")
        contact_service.save(db.session, contact, admin)
        return first.id


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp folder (outside the repo) for screenshots a human can look at."""
    folder = tmp_path_factory.mktemp("browser-screenshots")
    print(f"\nbrowser screenshots: {folder}")
    return folder


@contextmanager
def admin_page(server: Server, username: str = "admin") -> Iterator[tuple[Page, Monitor]]:
    """Headless Debian Chromium, logged in (as admin unless another user is named) through the
    login form, with a monitor."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium fonts-noto-cjk;"
            " CI does it in .ci/run). The browser test does not skip.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
            context.set_default_timeout(15_000)
            page = context.new_page()
            server.exceptions.clear()
            monitor = Monitor(server)
            monitor.attach(page)
            login(page, monitor, server.url, username)
            yield page, monitor
        finally:
            browser.close()


def wait_until(page: Page, expression: str, timeout_ms: int = 15_000) -> None:
    """Wait until a JavaScript expression is true. Playwright's wait_for_function compiles its
    string in the page with `new Function`, which the app's Content-Security-Policy refuses (no
    'unsafe-eval'), so poll with evaluate(), which the policy does not govern."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout_ms} ms: {expression}"
        page.wait_for_timeout(50)


def login(page: Page, monitor: Monitor, base_url: str, username: str = "admin") -> None:
    monitor.current = "/login/"
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    monitor.settle(page)
    if "/login" in urlsplit(page.url).path:
        pytest.fail(f"{username} could not log in:\n{page.inner_text('body')[:500]}")


def visit(page: Page, monitor: Monitor, url: str) -> None:
    """Open a page and wait until its scripts and requests have settled."""
    target = urlsplit(url)
    monitor.current = target.path + (f"?{target.query}" if target.query else "")
    response = page.goto(url)
    monitor.settle(page)
    if response is None or response.status >= 400:
        monitor.add(f"page answered HTTP {response.status if response else 'nothing'}")
    if urlsplit(page.url).path.startswith("/login"):
        monitor.add("redirected to the login page (no permission for Admin?)")


def menu_urls(page: Page, base_url: str) -> list[str]:
    """Every navbar entry's URL, in menu order, without logout and the language switch."""
    hrefs: list[str] = page.eval_on_selector_all(MENU_LINKS, "els => els.map(a => a.getAttribute('href'))")
    urls: list[str] = []
    for href in hrefs:
        path = urlsplit(href).path
        if not href or href.startswith(("#", "javascript:")) or path.startswith(("/logout", "/lang/")):
            continue
        url = urljoin(base_url + "/", href)
        if url not in urls:
            urls.append(url)
    return urls


def test_every_page_works_offline(server: Server, customer_id: int, screenshots: Path) -> None:
    """Every menu entry plus home, search, add/show/edit and Swagger: no error, nothing external."""
    with admin_page(server) as (page, monitor):
        base = server.url
        visit(page, monitor, f"{base}/")
        page.screenshot(path=str(screenshots / "home.png"), full_page=True)
        menu = menu_urls(page, base)
        paths = {urlsplit(url).path for url in menu}
        assert {"/customerview/list/", "/contactview/list/", "/users/list/"} <= paths, (
            f"navbar entries not found with {MENU_LINKS!r}: {sorted(paths)}"
        )
        extra = [
            "/search/?q=东营",
            "/customerview/add",
            f"/customerview/show/{customer_id}",
            f"/customerview/edit/{customer_id}",
            "/swagger/v1",
        ]
        for url in menu + [base + path for path in extra]:
            visit(page, monitor, url)
            if urlsplit(url).path == "/customerview/list/":
                page.screenshot(path=str(screenshots / "customers.png"), full_page=True)
            if urlsplit(url).path == "/swagger/v1":  # the UI renders once it has fetched the spec
                page.wait_for_selector("#swagger-ui .info", state="visible")
                monitor.settle(page)
        problems = monitor.report()
    visited = "\n  ".join(urlsplit(url).path for url in menu)
    assert not problems, (
        f"{len(problems.splitlines())} problem(s) in the browser:\n{problems}\n"
        f"(menu entries visited:\n  {visited})"
    )


def test_a_customer_tab_loads_its_list_when_opened(server: Server, customer_id: int) -> None:
    """The 360 page renders its tabs empty; opening 联系人 fetches the contacts into the tab, and
    a sorting link of that list reloads it in place, without leaving the page."""
    with admin_page(server) as (page, monitor):
        visit(page, monitor, f"{server.url}/customerview/show/{customer_id}")
        pane = page.locator("#ContactView")
        assert pane.locator(".crm-lazy-tab").count() == 1 and "张三" not in (pane.text_content() or "")
        page.click('a[href="#ContactView"]')
        pane.locator("text=张三").wait_for()
        monitor.settle(page)
        sort = pane.locator("th a[href*='_oc_ContactView']").first
        sort.click()
        monitor.settle(page)
        assert urlsplit(page.url).path == f"/customerview/show/{customer_id}"  # still on the page
        assert "张三" in (pane.text_content() or "")
        problems = monitor.report()
    assert not problems, problems


def test_language_switch(server: Server, customer_id: int) -> None:
    """/lang/en shows Flask-AppBuilder's English strings, /lang/zh brings the Chinese back."""
    with admin_page(server) as (page, monitor):
        customers = f"{server.url}/customerview/list/"
        visit(page, monitor, f"{server.url}/lang/en")
        visit(page, monitor, customers)
        body = page.inner_text("body")
        assert "Record Count" in body and "Search" in body, f"not English:\n{body[:800]}"

        visit(page, monitor, f"{server.url}/lang/zh")
        visit(page, monitor, customers)
        menu, body = page.text_content(".navbar-nav") or "", page.inner_text("body")
        assert "客户" in menu and "记录数" in body, f"not Chinese:\n{body[:800]}"
        assert "Record Count" not in body
        problems = monitor.report()
    assert not problems, problems


def test_region_selects_cascade(server: Server, customer_id: int) -> None:
    """Choosing 山东省 narrows the cities; choosing 东营市 loads its districts from the API."""
    with admin_page(server) as (page, monitor):
        visit(page, monitor, f"{server.url}/customerview/add")
        assert page.locator("#district option").count() <= 1  # no city yet: no districts
        page.select_option("#province", "370000")
        cities = page.eval_on_selector_all("#city option", "els => els.map(o => o.value).filter(Boolean)")
        assert "370500" in cities and all(code.startswith("37") for code in cities)
        page.select_option("#city", "370500")
        wait_until(page, "document.querySelectorAll('#district option').length > 1")
        districts = page.eval_on_selector_all("#district option", "els => els.map(o => o.textContent)")
        assert {"东营区", "河口区", "垦利区", "利津县", "广饶县"} <= set(districts)
        problems = monitor.report()
    assert not problems, problems


def test_a_custom_field_defined_in_the_browser_is_used_at_once(
    server: Server, customer_id: int, clean_custom_fields: None
) -> None:
    """The admin defines a select field on the definition screen (only the options of the type
    are shown); the customer list at once offers it as a filter, which finds the right record."""
    api_name = f"grade_{unique_name('')[-5:].replace('-', '')}"
    with admin_page(server) as (page, monitor):
        visit(page, monitor, f"{server.url}/customfieldview/add")
        page.select_option("#entity", "customer")
        page.select_option("#field_type", "formula")
        assert page.locator("#formula").is_visible() and not page.locator("#choices").is_visible()
        page.select_option("#field_type", "select")
        assert page.locator("#choices").is_visible() and not page.locator("#formula").is_visible()
        page.fill("#api_name", api_name)
        page.fill("#label_zh", "资质等级")
        page.fill("#choices", "甲级\n乙级")
        page.check("#show_in_list")
        with page.expect_navigation():
            page.click("#model_form button[type=submit], #model_form input[type=submit]")
        monitor.settle(page)
        saved = db.session.scalar(select(CustomField).where(CustomField.api_name == api_name))
        assert saved is not None and saved.choices == ["甲级", "乙级"], page.inner_text("body")[:800]

        customer = db.session.get(Customer, customer_id)
        customer_service.save(db.session, customer, user("admin"))  # no value yet
        customer.custom = {**(customer.custom or {}), api_name: "甲级"}
        customer_service.save(db.session, customer, user("admin"))

        visit(page, monitor, f"{server.url}/customerview/list/")
        assert "资质等级" in (page.text_content("table thead") or "")
        page.click("#accordion1 .accordion-toggle")  # open the search panel
        page.click("#filter_form .dropdown-toggle")
        page.click(f"#filter_form a.filter[name=custom__{api_name}]")
        page.locator(f"#filter_form select[name$=custom__{api_name}]").select_option("甲级")
        with page.expect_navigation():
            page.click("#filter_form button[type=submit]")
        monitor.settle(page)
        assert f"custom__{api_name}=" in page.url
        listed = page.inner_text(".table-responsive table")  # the list, not the filter rows
        assert customer.name in listed and "甲级" in listed
        problems = monitor.report()
    assert not problems, problems


def test_a_manager_approves_a_contract_from_the_workbench(server: Server) -> None:
    """rep_a's contract waits for their superior: manager1 finds it on the workbench, opens it and
    approves it with a comment; the contract is approved."""
    flow = ApprovalFlow(
        name=unique_name("浏览器审批"), document="order", position=-2000,
        steps=[ApprovalStep(position=1, approver_kind="superior", mode="any")],
    )  # fmt: skip
    db.session.add(flow)
    db.session.commit()
    rep = user("rep_a")
    customer = customer_service.save(db.session, Customer(name=unique_name("审批客户"), owner=rep), rep)
    line = OrderLine(description="液碱 32%", quantity=Decimal("10"), unit_price=Decimal("1200"))
    contract = Order(kind="contract", title=unique_name("浏览器合同"), customer_id=customer.id, lines=[line])
    try:
        order_service.save(db.session, contract, rep)
        submit_order(db.session, contract, rep)
        assert contract.status == "pending"
        with admin_page(server, "manager1") as (page, monitor):
            visit(page, monitor, f"{server.url}/")
            with page.expect_navigation():
                page.click(f"#wb-approvals a:has-text('{contract.number}')")
            monitor.settle(page)
            page.fill("#approval-comment", "同意, 注意回款")
            with page.expect_navigation():
                page.click("button[value=approve]")
            monitor.settle(page)
            problems = monitor.report()
        assert not problems, problems
        db.session.rollback()  # a new snapshot: MariaDB's repeatable read would show the old row
        assert db.session.get(Order, contract.id).status == "approved"
    finally:
        flow.active = False
        db.session.commit()


def test_an_order_list_is_filtered_by_a_customer_picked_by_typing(server: Server) -> None:
    """The filter bar's customer is a remote select (a plain one would list every customer in
    the page): add the filter, type part of the name, pick the match, search; the list shows that
    customer's order only, and the filter bar shows the customer's name."""
    admin = user("admin")
    name = unique_name("筛选客户")
    chosen = customer_service.save(db.session, Customer(name=name, mobile=unique_mobile()), admin)
    other = customer_service.save(
        db.session, Customer(name=unique_name("别的客户"), mobile=unique_mobile()), admin
    )
    orders = {}
    for customer in (chosen, other):
        line = OrderLine(description="液碱 32%", quantity=Decimal("1"), unit_price=Decimal("100"))
        order = Order(title=unique_name("筛选订单"), customer_id=customer.id, lines=[line])
        orders[customer.id] = order_service.save(db.session, order, admin)
    with admin_page(server) as (page, monitor):
        visit(page, monitor, f"{server.url}/orderview/list/")
        assert page.locator("#filter_form select.crm-remote-select").count() == 0  # none until added
        page.click("a.accordion-toggle[href='#accordion1_href']")  # the 搜索 panel
        page.click("#filter_form button.dropdown-toggle")
        page.click("#filter_form a.filter[name=customer]")
        box = page.locator("#filter_form select.crm-remote-select")
        remote = "#filter_form select.crm-remote-select + .select2-container"  # select2 made it searchable
        wait_until(page, f"document.querySelector({remote!r}) !== null")
        assert box.count() == 1
        page.click(f"{remote} .select2-selection")
        page.fill(".select2-search__field", name[:6])
        page.click(f".select2-results__option:has-text('{name}')")
        with page.expect_navigation():
            page.click("#filter_form button[type=submit], #filter_form .btn-primary")
        monitor.settle(page)
        listed = " ".join(page.locator("table:not(.filters)").all_inner_texts())
        assert orders[chosen.id].number in listed and orders[other.id].number not in listed
        assert f"_flt_0_customer={chosen.id}" in page.url
        assert name in page.inner_text("#filter_form")  # the chosen customer, named
        problems = monitor.report()
    assert not problems, problems


def test_an_order_list_is_filtered_by_a_status_picked_by_its_label(server: Server) -> None:
    """A choice column's filter is a select of its labels (草稿, 已作废, ...), not a text box
    where the user would have to type the stored code: pick 已作废, search; the voided order
    stays and the draft goes."""
    admin = user("admin")
    customer = customer_service.save(
        db.session, Customer(name=unique_name("状态筛选客户"), mobile=unique_mobile()), admin
    )
    made = []
    for _number in range(2):
        line = OrderLine(description="硫酸 98%", quantity=Decimal("1"), unit_price=Decimal("100"))
        order = Order(title=unique_name("状态订单"), customer_id=customer.id, lines=[line])
        made.append(order_service.save(db.session, order, admin))
    draft, voided = made
    move_order(db.session, voided, "voided", admin, "客户取消采购计划")
    with admin_page(server) as (page, monitor):
        visit(page, monitor, f"{server.url}/orderview/list/?_flt_0_customer={customer.id}")
        page.click("a.accordion-toggle[href='#accordion1_href']")  # the 搜索 panel
        page.click("#filter_form button.dropdown-toggle")
        page.click("#filter_form a.filter[name=status]")
        status = page.locator("#filter_form select.filter_val[name$=_status]")
        labels = status.evaluate("select => Array.from(select.options).map(o => o.text)")
        assert {"草稿", "已审批", "已作废"} <= set(labels), labels
        status.select_option(label="已作废", force=True)  # select2 hides the select itself
        with page.expect_navigation():
            page.click("#filter_form button[type=submit], #filter_form .btn-primary")
        monitor.settle(page)
        assert "_flt_0_status=voided" in page.url, page.url
        listed = " ".join(page.locator("table:not(.filters)").all_inner_texts())
        assert voided.number in listed and draft.number not in listed
        problems = monitor.report()
    assert not problems, problems
