"""The phone app's and the researcher's day, through the client generated from the contract.

Run against a live demo server by `.ci/clients`: `python scenario.py URL SIGN_INS`, where
SIGN_INS is the file `ketamine-outcomes demo` printed. Type-checked with `mypy --strict`
first, so a contract that gives a client the wrong types fails before anything runs.
"""

import csv
import datetime
import io
import json
import sys
import uuid
from typing import TypeVar

from ketamine_outcomes_client import AuthenticatedClient, Client
from ketamine_outcomes_client.api.auth import login, register
from ketamine_outcomes_client.api.courses import create_course
from ketamine_outcomes_client.api.me import (
    create_my_assessment,
    create_my_side_effect,
    get_me,
    get_my_due_assessments,
    list_my_assessments,
)
from ketamine_outcomes_client.api.outcomes import get_trajectory
from ketamine_outcomes_client.api.patients import create_invite, create_patient
from ketamine_outcomes_client.api.research import research_export, research_outcomes
from ketamine_outcomes_client.api.research_grants import create_research_grant
from ketamine_outcomes_client.api.sessions import create_session
from ketamine_outcomes_client.api.side_effects import update_side_effect
from ketamine_outcomes_client.models import (
    AssessmentResponse,
    CourseResponse,
    CreateAssessmentRequest,
    CreateCourseRequest,
    CreateGrantRequest,
    CreatePatientRequest,
    CreateSessionRequest,
    CreateSideEffectRequest,
    Dimension,
    DueAssessmentsResponse,
    Effect,
    ExportFormat,
    ExportKind,
    ExportRow,
    FlagKind,
    GrantResponse,
    Indication,
    Instrument,
    InviteResponse,
    LoginRequest,
    MeResponse,
    PagedAssessmentResponse,
    PatientResponse,
    RegisterRequest,
    ResearchOutcomesResponse,
    Route,
    SessionResponse,
    Severity,
    Sex,
    SideEffectPatch,
    SideEffectResponse,
    TokenResponse,
)
from ketamine_outcomes_client.types import Response

T = TypeVar("T")
R = TypeVar("R")


def expect(response: Response[R], status: int, kind: type[T]) -> T:
    """The parsed body of an answer with the expected status and type."""
    assert response.status_code == status, (response.status_code, response.content[:400])
    parsed = response.parsed
    assert isinstance(parsed, kind), parsed
    return parsed


def signed_in(url: str, email: str, password: str) -> AuthenticatedClient:
    tokens = expect(
        login.sync_detailed(client=Client(url), body=LoginRequest(email=email, password=password)),
        200,
        TokenResponse,
    )
    return AuthenticatedClient(url, token=tokens.access_token)


def now(minutes: int = 0) -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)


def phone_app(url: str, clinician: AuthenticatedClient) -> None:
    """Registered with an invite: the due list, a PHQ-9 with item 9 answered (the crisis
    message), a retried submission, a side effect marked resolved, a sync."""
    patient = expect(
        create_patient.sync_detailed(
            client=clinician,
            body=CreatePatientRequest(
                birth_year=1984, sex=Sex.FEMALE, indications=[Indication.TREATMENT_RESISTANT_DEPRESSION]
            ),
        ),
        201,
        PatientResponse,
    )
    expect(
        create_course.sync_detailed(
            patient.id,
            client=clinician,
            body=CreateCourseRequest(
                indication=Indication.TREATMENT_RESISTANT_DEPRESSION,
                start_date=now(-3 * 24 * 60).date(),
            ),
        ),
        201,
        CourseResponse,
    )
    expect(
        create_session.sync_detailed(
            patient.id,
            client=clinician,
            body=CreateSessionRequest(route=Route.IV, started_at=now(-120), dose_mg_per_kg=0.5, weight_kg=70.0),
        ),
        201,
        SessionResponse,
    )
    chart = expect(get_trajectory.sync_detailed(patient.id, client=clinician), 200, str)
    assert "<svg" in chart and "</svg>" in chart, chart[:200]
    invite = expect(create_invite.sync_detailed(patient.id, client=clinician), 201, InviteResponse)
    tokens = expect(
        register.sync_detailed(
            client=Client(url),
            body=RegisterRequest(
                email=f"phone-{uuid.uuid4().hex[:8]}@example.org",
                invite_code=invite.invite_code,
                password="lantern orbit kettle drum",
            ),
        ),
        201,
        TokenResponse,
    )
    phone = AuthenticatedClient(url, token=tokens.access_token)
    synced_from = now(-1)

    due = expect(get_my_due_assessments.sync_detailed(client=phone), 200, DueAssessmentsResponse)
    assert isinstance(due.due_now, list)

    body = CreateAssessmentRequest(
        id=uuid.uuid4(), instrument=Instrument.PHQ9, taken_at=now(-5), items=[2, 2, 1, 2, 1, 1, 2, 1, 1]
    )
    first = expect(create_my_assessment.sync_detailed(client=phone, body=body), 201, AssessmentResponse)
    assert first.crisis_message, "item 9 answered: the app shows the crisis message at once"
    assert FlagKind.SUICIDAL_IDEATION in [flag.kind for flag in first.flags]
    retried = expect(create_my_assessment.sync_detailed(client=phone, body=body), 200, AssessmentResponse)
    assert retried.id == first.id, "a retry after a timeout creates nothing new"

    reported = expect(
        create_my_side_effect.sync_detailed(
            client=phone,
            body=CreateSideEffectRequest(effect=Effect.NAUSEA, severity=Severity.MILD, onset_at=now(-60)),
        ),
        201,
        SideEffectResponse,
    )
    resolved = expect(
        update_side_effect.sync_detailed(reported.id, client=phone, body=SideEffectPatch(resolved_at=now(-10))),
        200,
        SideEffectResponse,
    )
    assert resolved.resolved_at is not None

    changed = expect(
        list_my_assessments.sync_detailed(client=phone, updated_since=synced_from.isoformat()),
        200,
        PagedAssessmentResponse,
    )
    assert first.id in [item.id for item in changed.items]
    # The next sync starts where this one ended: nothing new since.
    assert isinstance(changed.sync_cursor, str), changed
    again = expect(
        list_my_assessments.sync_detailed(client=phone, updated_since=changed.sync_cursor),
        200,
        PagedAssessmentResponse,
    )
    assert again.items == [], again.items


def researcher(url: str, admin: AuthenticatedClient, sign_in: tuple[str, str]) -> None:
    """An aggregate query read through its typed group; the export, granted, read as text."""
    research = signed_in(url, *sign_in)
    answer = expect(
        research_outcomes.sync_detailed(client=research, group_by=[Dimension.SEX]),
        200,
        ResearchOutcomesResponse,
    )
    assert answer.rows, "the demo's research cohort releases groups"
    for row in answer.rows:
        assert isinstance(row.group.sex, Sex), row.group
        assert row.patients >= 0
    who = expect(get_me.sync_detailed(client=research), 200, MeResponse)
    expect(
        create_research_grant.sync_detailed(
            client=admin,
            body=CreateGrantRequest(
                researcher_id=who.id,
                purpose="durability of maintenance infusions",
                reference="DUA-2026-017",
                expires_at=now(60 * 24 * 30),
            ),
        ),
        201,
        GrantResponse,
    )
    exported = research_export.sync_detailed(client=research)
    assert exported.status_code == 200, exported.content[:400]
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert rows and {"kind", "patient", "day"} <= rows[0].keys(), rows[:1]
    # As NDJSON, each line is read as the contract's ExportRow, its categories as enumerations.
    lines = research_export.sync_detailed(client=research, format_=ExportFormat.NDJSON)
    assert lines.status_code == 200, lines.content[:400]
    typed = [ExportRow.from_dict(json.loads(line)) for line in lines.content.decode().splitlines()]
    assert len(typed) == len(rows), (len(typed), len(rows))
    assert {row.kind for row in typed} <= set(ExportKind), typed[:1]


def main() -> None:
    url, sign_ins = sys.argv[1], sys.argv[2]
    accounts: dict[str, tuple[str, str]] = {}
    with open(sign_ins, encoding="utf-8") as lines:
        for line in lines:
            parts = line.split()
            if len(parts) >= 3 and line.startswith("  "):
                accounts.setdefault(parts[0], (parts[1], " ".join(parts[2:])))
    phone_app(url, signed_in(url, *accounts["clinician"]))
    researcher(url, signed_in(url, *accounts["admin"]), accounts["researcher"])
    print("python scenario: passed")


if __name__ == "__main__":
    main()
