"""Reading a cycle's state from the database: the shared view every phase starts from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from hytetu import db
from hytetu.config import is_invited, localized
from hytetu.errors import StateError
from hytetu.mail import MailSettings
from hytetu.render import render


@dataclass
class CycleView:
    session: Session
    cycle: db.Cycle
    region: db.Region

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.region.timezone)

    @property
    def language(self) -> str:
        return self.region.languages[0]

    @property
    def template_override(self) -> Path:
        return Path(self.cycle.config_folder) / "templates"

    def render(self, name: str, language: str, context: dict) -> str:
        """A template, with the region's overrides from its config folder."""
        return render(
            name, language, context, fallback=self.language, override=self.template_override
        )

    def mail_settings(self) -> MailSettings:
        """The region's ``mail:`` block, as stored in the cycle when the config was loaded."""
        return MailSettings.model_validate(self.cycle.settings.get("mail") or {})

    def text(self, value: dict[str, str] | None, language: str | None = None) -> str:
        return localized(value, language or self.language, self.language)

    def sender_name(self, language: str | None = None) -> str:
        """The sender's name in ``language`` (region.sender.name may be {fi:..., sv:...})."""
        names = self.cycle.settings.get("sender_name")
        return self.text(names, language) if names else self.region.sender_name

    def contact(self, language: str | None = None) -> dict[str, str]:
        """The person a reader can ask (region.contact), else the sender: name, email and
        phone ("" when not given)."""
        person = self.cycle.settings.get("contact")
        if not person:
            return {
                "name": self.sender_name(language),
                "email": self.region.sender_email,
                "phone": "",
            }
        return {
            "name": self.text(person["name"], language),
            "email": person["email"],
            "phone": person.get("phone") or "",
        }

    def texts(self, language: str | None = None) -> dict[str, Any]:
        """cycle.yaml's ``texts:`` in ``language``: topic, law, agenda and background."""
        stored = self.cycle.settings.get("texts") or _default_texts()
        return {
            "topic": self.text(stored["topic"], language),
            "law": self.text(stored["law"], language),
            "agenda": [self.text(t, language) for t in stored["agenda"]],
            "background": [self.text(t, language) for t in stored["background"]],
        }

    def municipality_languages(self, municipality: db.Municipality) -> list[str]:
        """The languages its registry gets letters in (region.yaml's municipality
        ``languages``), in the region's order; default every language of the region."""
        given = (self.cycle.settings.get("municipality_languages") or {}).get(municipality.key)
        wanted = set(given or self.region.languages)
        return [lang for lang in self.region.languages if lang in wanted]

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def sessions(self) -> list[db.MeetingSession]:
        return list(
            self.session.scalars(
                select(db.MeetingSession)
                .filter_by(cycle_id=self.cycle.id)
                .order_by(db.MeetingSession.start)
            )
        )

    def session_title(self, s: db.MeetingSession, language: str | None = None) -> str:
        if s.title:
            return self.text(s.title, language)
        if s.group is not None:
            return self.text(s.group.name, language)
        return s.key

    def contacts(self) -> list[db.Contact]:
        return list(
            self.session.scalars(
                select(db.Contact)
                .filter_by(region_id=self.region.id, active=True)
                .order_by(db.Contact.org_key, db.Contact.email)
            )
        )

    def invitees(self, s: db.MeetingSession) -> list[db.Contact]:
        members = {m.key for m in s.group.municipalities} if s.group else None
        orgs: dict[str, tuple[str, list[str]]] = {
            m.key: ("municipality", [m.key])
            for m in self.session.scalars(
                select(db.Municipality).filter_by(region_id=self.region.id, active=True)
            )
        }
        for st in self.session.scalars(
            select(db.Stakeholder).filter_by(region_id=self.region.id, active=True)
        ):
            orgs[st.key] = (st.type, list(st.municipality_keys))
        out, seen = [], set()
        for c in self.contacts():
            kind, where = orgs.get(c.org_key, ("", []))
            if kind and is_invited(kind, where, members, s.invite_types) and c.email not in seen:
                seen.add(c.email)
                out.append(c)
        return out

    def org_names(self) -> dict[str, str]:
        names = {
            m.key: self.text(m.name)
            for m in self.session.scalars(
                select(db.Municipality).filter_by(region_id=self.region.id)
            )
        }
        for st in self.session.scalars(select(db.Stakeholder).filter_by(region_id=self.region.id)):
            names[st.key] = self.text(st.name)
        return names

    def matrix(
        self,
    ) -> tuple[list[db.PriorityArea], list[db.ServiceArea], dict[tuple[str, str], db.GoalCell]]:
        cid = self.cycle.id
        pas = list(
            self.session.scalars(
                select(db.PriorityArea).filter_by(cycle_id=cid).order_by(db.PriorityArea.position)
            )
        )
        sas = list(
            self.session.scalars(
                select(db.ServiceArea).filter_by(cycle_id=cid).order_by(db.ServiceArea.position)
            )
        )
        cells = {
            (c.priority_area_key, c.service_area_key): c
            for c in self.session.scalars(select(db.GoalCell).filter_by(cycle_id=cid))
        }
        return pas, sas, cells


def _default_texts() -> dict[str, Any]:
    """The texts of a cycle loaded before cycle.yaml had ``texts:`` (the schema's defaults)."""
    from hytetu.config import Texts

    return Texts().model_dump()


def region_keys(session: Session) -> list[str]:
    """The regions that have a cycle in the database, in key order."""
    query = select(db.Region.key).join(db.Cycle).distinct().order_by(db.Region.key)
    return list(session.scalars(query))


def cycle_view(
    session: Session, region_key: str | None = None, year: int | None = None
) -> CycleView:
    """The cycle asked for: the region's newest unless ``year`` is given. Without a region
    the database must hold only one region."""
    query = select(db.Cycle, db.Region).join(db.Region)
    if region_key:
        query = query.where(db.Region.key == region_key)
    else:
        keys = region_keys(session)
        if len(keys) > 1:
            raise StateError(
                f"the database holds {len(keys)} regions ({', '.join(keys)}): "
                "name one (--region KEY, or the flow's region parameter)"
            )
    if year:
        query = query.where(db.Cycle.year == year)
    row = session.execute(query.order_by(db.Cycle.year.desc())).first()
    if row is None:
        where = f" for region {region_key!r}" if region_key else ""
        raise StateError(
            f"no cycle{where} in the database: load a config first (hytetu load CONFIG_FOLDER)"
        )
    return CycleView(session, row[0], row[1])
