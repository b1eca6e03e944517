"""The database: the state of a cycle. SQLAlchemy 2 typed models and the one session helper.

SQLite (``sqlite:///hytetu.db``) is the embedded default; set ``HYTETU_DATABASE_URL`` for
PostgreSQL (``postgresql+psycopg://user@host/db``). Times are stored as UTC.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

DEFAULT_DATABASE_URL = "sqlite:///hytetu.db"


def database_url() -> str:
    return os.environ.get("HYTETU_DATABASE_URL") or DEFAULT_DATABASE_URL


def display_url(url: str) -> str:
    """``url`` fit to print or log: its password (HYTETU_DATABASE_URL may hold one) as ***."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, str]: JSON, dict[str, Any]: JSON}


Localized = dict[str, str]


class Region(Base):
    __tablename__ = "region"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[Localized]
    timezone: Mapped[str] = mapped_column(String(64))
    languages: Mapped[list[str]] = mapped_column(JSON)
    sender_name: Mapped[str] = mapped_column(String(200))
    sender_email: Mapped[str] = mapped_column(String(320))


group_members = Table(
    "group_member",
    Base.metadata,
    Column("group_id", ForeignKey("municipality_group.id", ondelete="CASCADE"), primary_key=True),
    Column("municipality_id", ForeignKey("municipality.id", ondelete="CASCADE"), primary_key=True),
)


class Municipality(Base):
    __tablename__ = "municipality"
    __table_args__ = (UniqueConstraint("region_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    key: Mapped[str] = mapped_column(String(80))
    name: Mapped[Localized]
    registry_email: Mapped[str] = mapped_column(String(320))
    active: Mapped[bool] = mapped_column(default=True)
    groups: Mapped[list[MunicipalityGroup]] = relationship(
        secondary=group_members, back_populates="municipalities"
    )


class MunicipalityGroup(Base):
    """A municipality group (kuntaryhmä): the municipalities that meet in one session."""

    __tablename__ = "municipality_group"
    __table_args__ = (UniqueConstraint("region_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    key: Mapped[str] = mapped_column(String(80))
    name: Mapped[Localized]
    active: Mapped[bool] = mapped_column(default=True)
    municipalities: Mapped[list[Municipality]] = relationship(
        secondary=group_members, back_populates="groups", order_by="Municipality.key"
    )


class Stakeholder(Base):
    """An NGO (järjestö), parish (seurakunta), employment area, company or county unit."""

    __tablename__ = "stakeholder"
    __table_args__ = (UniqueConstraint("region_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    key: Mapped[str] = mapped_column(String(80))
    type: Mapped[str] = mapped_column(String(40))
    name: Mapped[Localized]
    municipality_keys: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)


class Contact(Base):
    """A person invited and notified. ``org_key`` is a municipality's or a stakeholder's key."""

    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("region_id", "org_key", "email"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    org_key: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(80))
    language: Mapped[str | None] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(default=True)


class Cycle(Base):
    """One yearly round of negotiations (neuvottelut) of a region."""

    __tablename__ = "cycle"
    __table_args__ = (UniqueConstraint("region_id", "year"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    region: Mapped[Region] = relationship()
    year: Mapped[int]
    title: Mapped[Localized]
    plan_period: Mapped[str | None] = mapped_column(String(40))
    reference: Mapped[str | None] = mapped_column(String(120))
    config_folder: Mapped[str] = mapped_column(Text)
    feedback_opens: Mapped[date]
    feedback_deadline: Mapped[date]
    feedback_url: Mapped[str | None] = mapped_column(Text)
    feedback_opened_at: Mapped[datetime | None]
    feedback_closed_at: Mapped[datetime | None]
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PriorityArea(Base):
    """A priority area (painopiste): a row of the goal matrix."""

    __tablename__ = "priority_area"
    __table_args__ = (UniqueConstraint("cycle_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    key: Mapped[str] = mapped_column(String(80))
    name: Mapped[Localized]
    position: Mapped[int]


class ServiceArea(Base):
    """A service area or age group (palvelualue): a column of the goal matrix."""

    __tablename__ = "service_area"
    __table_args__ = (UniqueConstraint("cycle_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    key: Mapped[str] = mapped_column(String(80))
    name: Mapped[Localized]
    position: Mapped[int]


class GoalCell(Base):
    """One goal (tavoite) with its background (tausta): priority area × service area."""

    __tablename__ = "goal_cell"
    __table_args__ = (UniqueConstraint("cycle_id", "priority_area_key", "service_area_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    priority_area_key: Mapped[str] = mapped_column(String(80))
    service_area_key: Mapped[str] = mapped_column(String(80))
    goal: Mapped[Localized]
    background: Mapped[Localized | None]


class MeetingSession(Base):
    """A negotiation session: one per municipality group, plus the provider forum."""

    __tablename__ = "session"
    __table_args__ = (UniqueConstraint("cycle_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    cycle: Mapped[Cycle] = relationship()
    key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(40))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("municipality_group.id"))
    group: Mapped[MunicipalityGroup | None] = relationship()
    title: Mapped[Localized | None]
    start: Mapped[datetime]
    end: Mapped[datetime]
    online_url: Mapped[str | None] = mapped_column(Text)
    place: Mapped[str | None] = mapped_column(Text)
    invite_types: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    sequence: Mapped[int] = mapped_column(default=0)
    notes_hash: Mapped[str | None] = mapped_column(String(64))
    attendees: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Invitation(Base):
    """What a contact has been sent about a session: the last SEQUENCE and METHOD."""

    __tablename__ = "invitation"
    __table_args__ = (UniqueConstraint("session_id", "contact_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    sequence: Mapped[int]
    method: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackResponse(Base):
    """A view sent in during the feedback window (form export, built-in form, mailbox)."""

    __tablename__ = "feedback_response"
    __table_args__ = (UniqueConstraint("cycle_id", "fingerprint"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    respondent_org: Mapped[str | None] = mapped_column(String(300))
    respondent_type: Mapped[str | None] = mapped_column(String(40))
    respondent_email: Mapped[str | None] = mapped_column(String(320))
    municipality_key: Mapped[str | None] = mapped_column(String(80))
    group_key: Mapped[str | None] = mapped_column(String(80))
    priority_area_key: Mapped[str | None] = mapped_column(String(80))
    service_area_key: Mapped[str | None] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(20))
    late: Mapped[bool] = mapped_column(default=False)
    include_late: Mapped[bool] = mapped_column(default=False)


class Finding(Base):
    """A finding (nosto) raised in a session: in a goal cell, general, or a stakeholder remark."""

    __tablename__ = "finding"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # cell | general | stakeholder
    priority_area_key: Mapped[str | None] = mapped_column(String(80))
    service_area_key: Mapped[str | None] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    position: Mapped[int]


class Compilation(Base):
    """One run of the compilation (koonti), reproducible from its inputs' hash."""

    __tablename__ = "compilation"
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    input_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    rendered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Memo(Base):
    """A memo (muistio) of a municipality group, or the regional summary (group is None)."""

    __tablename__ = "memo"
    __table_args__ = (UniqueConstraint("cycle_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    key: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))  # group | summary
    group_id: Mapped[int | None] = mapped_column(ForeignKey("municipality_group.id"))
    group: Mapped[MunicipalityGroup | None] = relationship()
    versions: Mapped[list[MemoVersion]] = relationship(
        back_populates="memo", order_by="MemoVersion.number"
    )


class MemoVersion(Base):
    """A rendered version. Only an approved version can be dispatched; it is then frozen."""

    __tablename__ = "memo_version"
    __table_args__ = (UniqueConstraint("memo_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    memo_id: Mapped[int] = mapped_column(ForeignKey("memo.id"))
    memo: Mapped[Memo] = relationship(back_populates="versions")
    number: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))
    compilation_id: Mapped[int] = mapped_column(ForeignKey("compilation.id"))
    html: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    filename: Mapped[str] = mapped_column(String(200))
    # A group memo's annex: the feedback responses verbatim (PDF/A, sent with the memo) and
    # the same as CSV for the county's own use. Approved and frozen with the memo.
    annex_filename: Mapped[str | None] = mapped_column(String(200))
    annex_pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    annex_csv: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="draft")  # draft|approved|rejected
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)


class OutgoingMessage(Base):
    """Every message hytetu sends. ``dedupe_key`` makes each send happen once."""

    __tablename__ = "outgoing_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    message_id: Mapped[str] = mapped_column(String(300), unique=True)
    purpose: Mapped[str] = mapped_column(String(40))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    memo_version_id: Mapped[int | None] = mapped_column(ForeignKey("memo_version.id"))
    # pending | sending | sent | failed | skipped (a reminder whose point had passed)
    # | superseded | bounced (sent, then returned by a DSN or NDR: hytetu.mailbox)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # The lease of the run sending it: only an expired lease may be taken over (recovery).
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    first_attempt_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    recovered: Mapped[int] = mapped_column(default=0, server_default="0")
    # What came back (hytetu.mailbox): a bounce, a delay report, the registry's receipt.
    bounced_at: Mapped[datetime | None]
    bounce_reason: Mapped[str | None] = mapped_column(Text)
    delayed_at: Mapped[datetime | None]
    receipt_at: Mapped[datetime | None]
    # The registry's own reference (diaarinumero, asianumero, dnro) from its receipt.
    registry_reference: Mapped[str | None] = mapped_column(String(200))
    # A letter sent again after its bounce (a corrected address) refers to the first.
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("outgoing_message.id"))


class IncomingMessage(Base):
    """A message read from the county's mailbox, once: what it was and what it matched."""

    __tablename__ = "incoming_message"
    __table_args__ = (UniqueConstraint("mailbox", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(500))
    key: Mapped[str] = mapped_column(String(500))
    message_id: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    # rsvp | bounce | delayed | receipt | auto_reply | other | unreadable
    kind: Mapped[str] = mapped_column(String(20))
    outgoing_message_id: Mapped[int | None] = mapped_column(ForeignKey("outgoing_message.id"))
    # handled (acted on, marked in the mailbox) | ignored (an auto-reply, marked) |
    # left (not ours to handle: left in the mailbox, unmarked)
    state: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime | None]
    handled_at: Mapped[datetime] = mapped_column(default=utcnow)


class MailboxPosition(Base):
    """Where a mailbox reader is between ticks, per mailbox (Graph's ``@odata.deltaLink``):
    in the database, so every worker sees the same position whatever its out folder."""

    __tablename__ = "mailbox_position"
    mailbox: Mapped[str] = mapped_column(String(500), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Rsvp(Base):
    """A contact's answer to a session's invitation (iTIP REPLY): the latest one wins."""

    __tablename__ = "rsvp"
    __table_args__ = (UniqueConstraint("session_id", "contact_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    partstat: Mapped[str] = mapped_column(String(20))  # ACCEPTED|TENTATIVE|DECLINED|DELEGATED
    sequence: Mapped[int] = mapped_column(default=0)
    answered_at: Mapped[datetime]  # the REPLY's DTSTAMP
    delegated_to: Mapped[str | None] = mapped_column(String(320))
    incoming_message_id: Mapped[int] = mapped_column(ForeignKey("incoming_message.id"))


class RateLimiter(Base):
    """One row per rate-limited sender; its UPDATE serialises the takers of send slots."""

    __tablename__ = "rate_limiter"
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    touched_at: Mapped[datetime | None]


class SendSlot(Base):
    """A send taken from a rate limiter's sliding window."""

    __tablename__ = "send_slot"
    id: Mapped[int] = mapped_column(primary_key=True)
    limiter: Mapped[str] = mapped_column(String(320), index=True)
    at: Mapped[datetime]
    run: Mapped[str] = mapped_column(String(120))


class FeedbackImport(Base):
    """A form-export file that was imported (its hash makes re-imports a no-op)."""

    __tablename__ = "feedback_import"
    __table_args__ = (UniqueConstraint("cycle_id", "sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    filename: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int]
    added: Mapped[int]
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class FindingCorrection(Base):
    """An admin's correction of the compilation (merge, split, reclassify), re-applied on
    every compile."""

    __tablename__ = "finding_correction"
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    kind: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Indicator(Base):
    """An indicator of a cycle (from cycle.yaml's ``indicators:``), with the goal cells
    it is shown beside (``cells``: 'priority-area/service-area' keys)."""

    __tablename__ = "indicator"
    __table_args__ = (UniqueConstraint("cycle_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycle.id"))
    key: Mapped[str] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(String(20))
    sotkanet_id: Mapped[int | None]
    label: Mapped[Localized]
    unit: Mapped[Localized | None]
    better: Mapped[str] = mapped_column(String(10))
    decimals: Mapped[int] = mapped_column(default=1)
    position: Mapped[int]
    cells: Mapped[list[str]] = mapped_column(JSON)
    values: Mapped[list[IndicatorValue]] = relationship(
        back_populates="indicator", cascade="all, delete-orphan"
    )


class IndicatorValue(Base):
    """One published value: an indicator's value for an area in a year. ``area`` is a
    municipality's key, or 'county' or 'country'. A year without a value has no row: a
    missing value is missing, never 0."""

    __tablename__ = "indicator_value"
    __table_args__ = (UniqueConstraint("indicator_id", "area", "year"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    indicator_id: Mapped[int] = mapped_column(ForeignKey("indicator.id", ondelete="CASCADE"))
    indicator: Mapped[Indicator] = relationship(back_populates="values")
    area: Mapped[str] = mapped_column(String(80))
    year: Mapped[int]
    value: Mapped[float] = mapped_column(Float)
    abs_value: Mapped[float | None] = mapped_column(Float)


class AuditEvent(Base):
    """Who did what, when: config changes, approvals, phase transitions."""

    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(80))
    entity: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


_engines: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process."""
    url = url or database_url()
    if url not in _engines:
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        _engines[url] = engine
    return _engines[url]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Write-ahead logging: readers no longer block the writer (the web form beside a
    running flow), and with synchronous=NORMAL a commit writes the log without waiting for
    the disk (about 100x faster than the rollback journal's fsyncs; the outbox commits
    twice a message). A crashed process loses nothing; a power cut may lose the last
    commits, which for the outbox means a letter sent again with the same Message-ID,
    as after any crash mid-send. PostgreSQL is the choice where that matters."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A transaction: commits on success, rolls back on any error."""
    session = sessionmaker(get_engine(url), expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def audit(session: Session, action: str, entity: str, actor: str = "hytetu", **detail: Any) -> None:
    session.add(AuditEvent(actor=actor, action=action, entity=entity, detail=detail))


def dispose(url: str) -> None:
    """Close the pooled connections of ``url`` (before dropping a test database)."""
    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()
