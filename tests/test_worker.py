"""The background worker: task reminders in-app and by e-mail through the outbox, delivered to a
real SMTP server on loopback (aiosmtpd), exactly once across restarts, a mail server that is
down, and two workers racing; and each user's notifications, theirs only."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from flask import Flask
from sqlalchemy import delete, func, select, text, update

from app import worker
from app.extensions import db
from app.notifications import (
    SmtpSettings,
    deliver_outbox,
    notify,
    queue_mail,
    requeue,
    send_due_reminders,
)
from models.base import utcnow
from models.notifications import Notification, OutboxMessage
from models.sales import Task
from tests.conftest import unique_name, user


# --- a real SMTP server ------------------------------------------------------------------------------
class Mailbox:
    """aiosmtpd handler: keeps every accepted message; refuses the recipients in `refuse`."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse: set[str] = set()
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def with_subject(self, subject: str) -> list[tuple[str, list[str], EmailMessage]]:
        with self.lock:
            return [m for m in self.messages if m[2]["Subject"] == subject]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture()
def smtp(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A running SMTP server on 127.0.0.1, configured as the app's mail server; the outbox
    is drained first, so each test sees only the mail it causes."""
    server = SmtpServer(free_port())
    server.start()
    monkeypatch.setitem(app.config, "CRM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(app.config, "CRM_SMTP_PORT", server.port)
    monkeypatch.setitem(app.config, "CRM_MAIL_FROM", "KeGuan <crm@keguan.test>")
    run_jobs(app)
    server.mailbox.messages.clear()
    try:
        yield server
    finally:
        server.stop()


def settings(app: Flask) -> SmtpSettings:
    return SmtpSettings.from_config(app.config)


def run_jobs(app: Flask, now: dt.datetime | None = None) -> tuple[int, Any]:
    """What one worker pass does, in a job's own app context and session."""
    with app.app_context():
        try:
            reminded = send_due_reminders(db.session, now)
            return reminded, deliver_outbox(db.session, settings(app), now)
        finally:
            db.session.remove()


def fresh() -> Any:
    """The test's session, after the worker's commits (a new snapshot on MySQL too)."""
    db.session.rollback()
    return db.session


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- tasks -------------------------------------------------------------------------------------------
TASK_PREFIX = "回访提醒"


@pytest.fixture(autouse=True)
def close_test_tasks(app: Flask) -> Iterator[None]:
    """The tasks a test made are cancelled afterwards (other modules count open tasks; deleting
    them would let SQLite give their ids to new tasks)."""
    yield
    db.session.rollback()
    db.session.execute(
        update(Task)
        .where(Task.title.like(f"{TASK_PREFIX}{os.getpid()}-%"), Task.status == "open")
        .values(status="cancelled")
    )
    db.session.commit()


def api_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def create_task(api_as: Any, username: str, due: dt.datetime, **extra: Any) -> tuple[int, str]:
    title = unique_name(TASK_PREFIX)
    client, headers = api_as(username)
    response = client.post(
        "/api/v1/task/", json={"title": title, "due_at": api_time(due), **extra}, headers=headers
    )
    assert response.status_code == 201, response.json
    return response.json["id"], title


def subject_of(title: str) -> str:
    return f"任务提醒: {title}"


def notifications_for(task_id: int) -> list[Notification]:
    return list(
        fresh().scalars(select(Notification).where(Notification.link == f"/taskview/show/{task_id}")).all()
    )


def outbox_for(task_id: int) -> list[OutboxMessage]:
    return list(
        fresh()
        .scalars(select(OutboxMessage).where(OutboxMessage.dedup_key.like(f"task-reminder:{task_id}:%")))
        .all()
    )


# --- the scheduler, restarted ------------------------------------------------------------------------
def run_scheduler_until(app: Flask, done: Callable[[list[str]], bool], before: Callable[[Any], None]) -> None:
    """Start the real scheduler (background), wait until `done(executed job ids)`, stop it."""
    scheduler = worker.build_scheduler(app, background=True)
    executed: list[str] = []
    errors: list[Any] = []

    def listener(event: Any) -> None:
        (errors if event.exception else executed).append(event.exception or event.job_id)

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start()
    try:
        before(scheduler)
        wait_for(lambda: done(executed) or bool(errors))
    finally:
        scheduler.shutdown(wait=True)
    assert errors == []


def test_scheduler_delivers_a_reminder_once_across_a_restart(app, api_as, smtp) -> None:
    task_id, title = create_task(api_as, "rep_a", utcnow() - dt.timedelta(minutes=5))

    def reminded_and_delivered(executed: list[str]) -> bool:
        return "reminders" in executed and bool(smtp.mailbox.with_subject(subject_of(title)))

    def outbox_after_reminders(scheduler: Any) -> None:
        # both run at start-up; once the reminder is queued, let the outbox run again at once
        wait_for(lambda: bool(outbox_for(task_id)))
        scheduler.modify_job("outbox", next_run_time=dt.datetime.now(dt.UTC))

    run_scheduler_until(app, reminded_and_delivered, outbox_after_reminders)
    received = smtp.mailbox.with_subject(subject_of(title))
    assert len(received) == 1
    sender, recipients, message = received[0]
    assert recipients == ["rep_a@test.example.cn"] and sender == "crm@keguan.test"
    assert message["To"] == "rep_a@test.example.cn" and message["From"] == "KeGuan <crm@keguan.test>"
    assert len(notifications_for(task_id)) == 1
    assert [m.status for m in outbox_for(task_id)] == ["sent"]

    # restart: a new scheduler on the same job store runs every job again at start-up
    def reminders_and_outbox(executed: list[str]) -> bool:
        return {"reminders", "outbox"} <= set(executed)

    run_scheduler_until(app, reminders_and_outbox, lambda scheduler: None)
    run_jobs(app)  # and whatever the restart might have queued, delivered
    assert len(smtp.mailbox.with_subject(subject_of(title))) == 1
    assert len(notifications_for(task_id)) == 1
    jobs = fresh().execute(text(f"SELECT id FROM {worker.JOBSTORE_TABLE} ORDER BY id")).scalars().all()
    assert jobs == sorted(spec.id for spec in worker.JOBS)  # replaced, not added again


def test_formulas_job_is_daily_at_two_in_shanghai(app) -> None:
    scheduler = worker.build_scheduler(app, background=True)
    job = scheduler.get_job("formulas")
    assert (job.next_run_time.hour, job.next_run_time.minute) == (2, 0)
    assert str(job.next_run_time.tzinfo) == "Asia/Shanghai"
    assert {j.id for j in scheduler.get_jobs()} == {
        "reminders", "outbox", "formulas", "statistics", "classification", "recycle", "payment_plans",
        "backup",  # backups (app/backup.py)
        "sla",  # service tickets (app/sla.py)
        "rollups", "reports",  # dashboards (app/analytics/)
    }  # fmt: skip
    assert all(j.coalesce and j.max_instances == 1 for j in scheduler.get_jobs())
    assert worker.describe(scheduler)[0].startswith("  reminders")


def test_statistics_job_gives_sqlite_the_statistics_of_every_table(app) -> None:
    """SQLite plans with statistics only after ANALYZE: the daily job takes them for every table
    (elsewhere the database keeps its own and only the custom-field indexes are refreshed)."""
    worker.build_scheduler(app, background=True)  # the job finds its app there
    report = worker.statistics_job()
    if db.session.get_bind().dialect.name != "sqlite":
        assert report.endswith("custom-field indexes analysed")
        return
    assert report.endswith("tables analysed") and int(report.split()[0]) > 20
    analysed = set(db.session.scalars(text("SELECT DISTINCT tbl FROM sqlite_stat1")))
    assert {"crm_region", "ab_user", "crm_department"} <= analysed  # the tables with rows here


def test_a_daily_run_missed_while_the_worker_was_stopped_is_caught_up(app) -> None:
    scheduler = worker.build_scheduler(app, background=True)
    scheduler.start(paused=True)  # stores the jobs, runs nothing
    scheduler.shutdown()
    missed = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    fresh().execute(
        text(f"UPDATE {worker.JOBSTORE_TABLE} SET next_run_time = :t WHERE id = 'formulas'"),
        {"t": missed.timestamp()},
    )
    db.session.commit()
    restarted = worker.build_scheduler(app, background=True)
    job = restarted.get_job("formulas")
    assert job.next_run_time == missed and job.misfire_grace_time >= 3600  # runs at start, late
    assert restarted.get_job("reminders").next_run_time > missed  # minute jobs simply start now


# --- the reminder's content, --once, a new due time --------------------------------------------------
def test_worker_once_reminds_once_and_again_after_a_new_due_time(app, api_as, smtp) -> None:
    due = (utcnow() - dt.timedelta(minutes=3)).replace(microsecond=0)
    task_id, title = create_task(api_as, "rep_a", due)
    runner = app.test_cli_runner()

    result = runner.invoke(args=["crm", "worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "reminders: " in result.output and "outbox: " in result.output and "formulas: " in result.output
    received = smtp.mailbox.with_subject(subject_of(title))
    assert len(received) == 1
    _sender, _recipients, message = received[0]
    body = message.get_content()
    local_due = due.replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert f"{local_due:%Y-%m-%d %H:%M}" in body and "已于" in body  # Asia/Shanghai, overdue
    assert f"http://127.0.0.1:8080/taskview/show/{task_id}" in body
    assert message["Message-ID"].startswith("<keguan-outbox-")
    [notification] = notifications_for(task_id)
    assert notification.user_id == user("rep_a").id and notification.read_at is None
    assert notification.title == subject_of(title)
    assert fresh().get(Task, task_id).reminded_at is not None

    again = runner.invoke(args=["crm", "worker", "--once"])  # a second run, as after a restart
    assert again.exit_code == 0, again.output
    assert len(smtp.mailbox.with_subject(subject_of(title))) == 1
    assert len(notifications_for(task_id)) == 1

    new_due = (utcnow() + dt.timedelta(minutes=10)).replace(microsecond=0)  # within the lead time
    client, headers = api_as("rep_a")
    response = client.put(f"/api/v1/task/{task_id}", json={"due_at": api_time(new_due)}, headers=headers)
    assert response.status_code == 200, response.json
    assert fresh().get(Task, task_id).reminded_at is None
    runner.invoke(args=["crm", "worker", "--once"])
    received = smtp.mailbox.with_subject(subject_of(title))
    assert len(received) == 2 and len(notifications_for(task_id)) == 2
    local_new = new_due.replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert (
        f"{local_new:%Y-%m-%d %H:%M}" in received[1][2].get_content()
        and "将于" in received[1][2].get_content()
    )
    assert len(outbox_for(task_id)) == 2  # one per due time (the dedup key holds the due time)
    runner.invoke(args=["crm", "worker", "--once"])
    assert len(smtp.mailbox.with_subject(subject_of(title))) == 2


def test_only_open_tasks_due_within_the_lead_time_are_reminded(app, api_as, smtp) -> None:
    now = utcnow()
    soon, soon_title = create_task(api_as, "rep_b", now + dt.timedelta(minutes=14))
    later, later_title = create_task(api_as, "rep_b", now + dt.timedelta(minutes=40))
    done, done_title = create_task(api_as, "rep_b", now - dt.timedelta(hours=1), status="done")
    cancelled, _title = create_task(api_as, "rep_b", now - dt.timedelta(hours=1), status="cancelled")
    reminded, report = run_jobs(app)
    assert reminded == 1 and report.sent == 1
    assert [r for _s, r, _m in smtp.mailbox.with_subject(subject_of(soon_title))] == [
        ["rep_b@test.example.cn"]
    ]
    assert not smtp.mailbox.with_subject(subject_of(later_title))
    assert not smtp.mailbox.with_subject(subject_of(done_title))
    assert [len(notifications_for(t)) for t in (soon, later, done, cancelled)] == [1, 0, 0, 0]
    # the later one, once its time comes
    reminded, report = run_jobs(app, now + dt.timedelta(minutes=30))
    assert reminded >= 1 and len(smtp.mailbox.with_subject(subject_of(later_title))) == 1
    assert [len(notifications_for(t)) for t in (soon, later, done, cancelled)] == [1, 1, 0, 0]


def test_no_smtp_host_keeps_mail_in_the_outbox(app, api_as, smtp, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "CRM_SMTP_HOST", "")
    task_id, title = create_task(api_as, "rep_a", utcnow() - dt.timedelta(minutes=1))
    reminded, report = run_jobs(app)
    assert reminded == 1 and report.disabled and "disabled" in str(report)
    assert [m.status for m in outbox_for(task_id)] == ["pending"] and len(notifications_for(task_id)) == 1
    monkeypatch.setitem(app.config, "CRM_SMTP_HOST", "127.0.0.1")
    run_jobs(app)
    assert len(smtp.mailbox.with_subject(subject_of(title))) == 1
    assert [m.status for m in outbox_for(task_id)] == ["sent"]


# --- a mail server that is down ----------------------------------------------------------------------
def test_smtp_down_keeps_the_message_and_delivers_it_once_when_back(app, api_as, smtp, monkeypatch) -> None:
    smtp.stop()
    down = SmtpServer(free_port())  # nothing listens there yet
    monkeypatch.setitem(app.config, "CRM_SMTP_PORT", down.port)
    task_id, title = create_task(api_as, "rep_c", utcnow() - dt.timedelta(minutes=2))

    reminded, report = run_jobs(app)
    assert reminded == 1 and report.sent == 0 and report.retrying == 1
    [message] = outbox_for(task_id)
    assert message.status == "pending" and message.attempts == 1 and message.sent_at is None
    assert "ConnectionRefusedError" in message.last_error
    assert message.next_attempt_at > utcnow()  # backoff
    assert len(notifications_for(task_id)) == 1  # in-app does not wait for mail

    down.start()
    try:
        _reminded, report = run_jobs(app)  # the server is back, but the backoff has not passed
        assert report.sent == 0 and not down.mailbox.with_subject(subject_of(title))
        later = utcnow() + dt.timedelta(minutes=2)
        _reminded, report = run_jobs(app, later)
        assert report.sent >= 1
        received = down.mailbox.with_subject(subject_of(title))
        assert len(received) == 1 and received[0][1] == ["rep_c@test.example.cn"]
        [message] = outbox_for(task_id)
        assert message.status == "sent" and message.attempts == 2 and message.sent_at is not None
        run_jobs(app, later + dt.timedelta(hours=1))
        assert len(down.mailbox.with_subject(subject_of(title))) == 1
    finally:
        down.stop()


def test_retries_stop_after_the_maximum_then_an_admin_requeues(app, smtp, monkeypatch) -> None:
    smtp.stop()
    monkeypatch.setitem(app.config, "CRM_MAIL_MAX_ATTEMPTS", 3)
    key = unique_name("retry-test:")
    message_id = queue_mail(db.session, "rep_a@test.example.cn", "重试测试", "正文", dedup_key=key)
    db.session.commit()
    moment = utcnow().replace(microsecond=0)  # MySQL/MariaDB DATETIME keeps whole seconds
    for attempt in range(1, 4):
        with app.app_context():
            report = deliver_outbox(db.session, settings(app), moment)
            db.session.remove()
        message = fresh().get(OutboxMessage, message_id)
        assert message.attempts == attempt and message.last_error
        assert message.status == ("failed" if attempt == 3 else "pending")
        assert (report.failed, report.retrying) == ((1, 0) if attempt == 3 else (0, 1))
        if attempt < 3:
            assert message.next_attempt_at - moment == dt.timedelta(minutes=2 ** (attempt - 1))
            moment = message.next_attempt_at
    smtp.start()
    assert requeue(db.session, [message_id]) == 1
    report = deliver_outbox(db.session, settings(app), moment)
    assert report.sent == 1 and len(smtp.mailbox.with_subject("重试测试")) == 1
    assert fresh().get(OutboxMessage, message_id).status == "sent"


def test_a_refused_recipient_fails_at_once_and_other_mail_still_goes(app, smtp) -> None:
    smtp.mailbox.refuse.add("nobody@test.example.cn")
    bad = queue_mail(
        db.session, "nobody@test.example.cn", "拒收测试", "正文", dedup_key=unique_name("refused:")
    )
    good = queue_mail(db.session, "rep_b@test.example.cn", "正常测试", "正文", dedup_key=unique_name("ok:"))
    db.session.commit()
    report = deliver_outbox(db.session, settings(app))
    assert report.sent == 1 and report.failed == 1
    failed = fresh().get(OutboxMessage, bad)
    assert failed.status == "failed" and failed.attempts == 1 and "550" in failed.last_error
    assert fresh().get(OutboxMessage, good).status == "sent"
    assert len(smtp.mailbox.with_subject("正常测试")) == 1 and not smtp.mailbox.with_subject("拒收测试")


def test_an_interrupted_send_is_not_repeated(app, smtp) -> None:
    """A worker that died between claiming and finishing may have delivered the message:
    it is shown as failed for an admin to decide, never sent again on its own."""
    message_id = queue_mail(
        db.session, "rep_a@test.example.cn", "中断测试", "正文", dedup_key=unique_name("x:")
    )
    db.session.commit()
    fresh().execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status="sending", attempts=1, locked_at=utcnow() - dt.timedelta(minutes=30))
    )
    db.session.commit()
    report = deliver_outbox(db.session, settings(app))
    assert report.interrupted == 1 and report.sent == 0
    message = fresh().get(OutboxMessage, message_id)
    assert message.status == "failed" and "发送中断" in message.last_error
    assert not smtp.mailbox.with_subject("中断测试")


def test_the_same_dedup_key_is_queued_once(app) -> None:
    key = unique_name("dedup:")
    first = queue_mail(db.session, "rep_a@test.example.cn", "去重", "正文", dedup_key=key)
    second = queue_mail(db.session, "rep_a@test.example.cn", "去重", "正文", dedup_key=key)
    db.session.commit()
    assert first is not None and second is None
    again = queue_mail(db.session, "rep_a@test.example.cn", "去重", "正文", dedup_key=key)  # committed
    db.session.commit()
    assert again is None
    assert fresh().scalar(select(func.count()).where(OutboxMessage.dedup_key == key)) == 1


# --- two workers at once -----------------------------------------------------------------------------
def race(app: Flask, job: Callable[[], Any], workers: int = 2) -> list[Any]:
    """Run `job` in several threads at once, each in its own app context and session."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def run(index: int) -> None:
        with app.app_context():
            try:
                barrier.wait()
                results[index] = job()
            except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
                results[index] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(isinstance(r, Exception) for r in results), results
    return results


def test_two_workers_racing_still_remind_and_send_once(app, api_as, smtp) -> None:
    tasks = [create_task(api_as, "rep_a", utcnow() - dt.timedelta(minutes=1)) for _ in range(6)]
    reminded = race(app, lambda: send_due_reminders(db.session))
    assert sum(reminded) == len(tasks)
    reports = race(app, lambda: deliver_outbox(db.session, settings(app)))
    assert sum(r.sent for r in reports) == len(tasks)
    for task_id, title in tasks:
        assert len(notifications_for(task_id)) == 1
        assert len(outbox_for(task_id)) == 1
        assert len(smtp.mailbox.with_subject(subject_of(title))) == 1
    ids = [m[2]["Message-ID"] for m in smtp.mailbox.messages]
    assert len(ids) == len(set(ids))


# --- my notifications: screen and API ----------------------------------------------------------------
@pytest.fixture()
def notes(app) -> Iterator[dict[str, int]]:
    """One notification each for rep_a and rep_b."""
    mine = notify(db.session, user("rep_a"), unique_name("甲的提醒"), "内容", "/taskview/list/")
    theirs = notify(db.session, user("rep_b"), unique_name("乙的提醒"), "内容", "/taskview/list/")
    db.session.commit()
    ids = {"mine": mine.id, "theirs": theirs.id, "mine_title": mine.title, "theirs_title": theirs.title}
    yield ids
    db.session.rollback()
    db.session.execute(delete(Notification).where(Notification.id.in_([mine.id, theirs.id])))
    db.session.commit()


def test_notification_api_shows_a_user_only_their_own(app, api_as, notes) -> None:
    client, headers = api_as("rep_a")
    listed = client.get("/api/v1/notification/?q=(page_size:100)", headers=headers)
    assert listed.status_code == 200
    owners = set(fresh().scalars(select(Notification.user_id).where(
        Notification.id.in_([row["id"] for row in listed.json["result"]]))).all())  # fmt: skip
    assert owners == {user("rep_a").id}
    assert notes["mine"] in listed.json["ids"] and notes["theirs"] not in listed.json["ids"]
    assert client.get(f"/api/v1/notification/{notes['theirs']}", headers=headers).status_code == 404
    read_at = api_time(utcnow())
    other = client.put(f"/api/v1/notification/{notes['theirs']}", json={"read_at": read_at}, headers=headers)
    assert other.status_code == 404
    assert fresh().get(Notification, notes["theirs"]).read_at is None
    own = client.put(f"/api/v1/notification/{notes['mine']}", json={"read_at": read_at}, headers=headers)
    assert own.status_code == 200, own.json
    assert fresh().get(Notification, notes["mine"]).read_at is not None
    title_change = client.put(f"/api/v1/notification/{notes['mine']}", json={"title": "改"}, headers=headers)
    assert title_change.status_code == 400  # only read_at may change


def test_notification_screen_lists_opens_and_marks_only_ones_own(app, login_as, notes) -> None:
    page = login_as("rep_a")
    listing = page.get("/notificationview/list/").get_data(as_text=True)
    assert notes["mine_title"] in listing and notes["theirs_title"] not in listing and "未读" in listing
    assert page.get(f"/notificationview/show/{notes['theirs']}").status_code == 404
    assert page.get(f"/notificationview/open/{notes['theirs']}").status_code == 404
    # the list's action with someone else's id posted: ignored
    page.post("/notificationview/action_post", data={"action": "mark_read", "rowid": [notes["theirs"]]})
    assert fresh().get(Notification, notes["theirs"]).read_at is None
    opened = page.get(f"/notificationview/open/{notes['mine']}")
    assert opened.status_code == 302 and opened.headers["Location"].endswith("/taskview/list/")
    assert fresh().get(Notification, notes["mine"]).read_at is not None
    other = login_as("rep_b")
    other.post("/notificationview/action_post", data={"action": "mark_read", "rowid": [notes["theirs"]]})
    assert fresh().get(Notification, notes["theirs"]).read_at is not None


def test_every_role_sees_its_notifications_and_only_admins_the_outbox(app, api_as, login_as) -> None:
    for username in ("finance", "readonly", "manager1"):
        client, headers = api_as(username)
        assert client.get("/api/v1/notification/", headers=headers).status_code == 200, username
        assert client.get("/api/v1/outbox/", headers=headers).status_code in (401, 403), username
    client, headers = api_as("admin")
    assert client.get("/api/v1/outbox/", headers=headers).status_code == 200
    assert login_as("admin").get("/outboxmessageview/list/").status_code == 200
    assert login_as("rep_a").get("/outboxmessageview/list/").status_code in (302, 403)
