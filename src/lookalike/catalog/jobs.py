"""Background jobs (feed syncs started through the API): their state, counts and first errors, in the database so
that every server worker can answer for them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from lookalike.catalog.models import Job, utcnow

MAX_ERRORS = 50  # errors kept per job


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    state: str
    detail: str
    counts: dict[str, Any]
    errors: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


class JobRepository:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(self, kind: str, detail: str = "") -> str:
        job_id = uuid.uuid4().hex
        with self._sessions() as session, session.begin():
            session.add(Job(id=job_id, kind=kind, state="queued", detail=detail, counts={}, errors=[]))
        return job_id

    def update(self, job_id: str, *, state: str | None = None, detail: str | None = None,
               counts: dict[str, Any] | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        with self._sessions() as session, session.begin():
            job = session.get(Job, job_id)
            if job is None:
                return
            if state is not None:
                job.state = state
            if detail is not None:
                job.detail = detail
            if counts is not None:
                job.counts = counts
            if errors is not None:
                job.errors = errors[:MAX_ERRORS]
            job.updated_at = utcnow()

    def get(self, job_id: str) -> JobRecord | None:
        with self._sessions() as session:
            job = session.get(Job, job_id)
            if job is None:
                return None
            return JobRecord(job.id, job.kind, job.state, job.detail, dict(job.counts or {}), list(job.errors or []),
                             job.created_at, job.updated_at)
