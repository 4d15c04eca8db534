// The phone app's and the researcher's day, through a client generated from the contract
// (openapi-typescript types, openapi-fetch calls). Run by `.ci/clients` against a live demo
// server: `node dist/scenario.js URL SIGN_INS`. Compiled with `tsc --strict` first, so a
// contract that gives a client the wrong types fails before anything runs.

import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import createClient from "openapi-fetch";
import type { paths, components } from "./generated/schema.js";

type Schemas = components["schemas"];

const [url, signIns] = process.argv.slice(2);
if (!url || !signIns) throw new Error("usage: scenario.js URL SIGN_INS");

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`scenario failed: ${what}`);
}

/** The body of an answer with the expected status. */
function expect<T>(answer: { data?: T; error?: unknown; response: Response }, status: number, what: string): T {
  check(answer.response.status === status, `${what}: ${answer.response.status} ${JSON.stringify(answer.error)}`);
  check(answer.data !== undefined, `${what}: no body`);
  return answer.data;
}

const anonymous = createClient<paths>({ baseUrl: url });

async function signedIn(email: string, password: string) {
  const tokens = expect(await anonymous.POST("/v1/auth/login", { body: { email, password } }), 200, "sign-in");
  return createClient<paths>({ baseUrl: url, headers: { Authorization: `Bearer ${tokens.access_token}` } });
}

const minutesFromNow = (m: number) => new Date(Date.now() + m * 60_000).toISOString();

const accounts = new Map<string, [string, string]>();
for (const line of readFileSync(signIns, "utf8").split("\n")) {
  const [role, email, ...password] = line.trim().split(/\s+/);
  if (line.startsWith("  ") && role && email && password.length && !accounts.has(role)) {
    accounts.set(role, [email, password.join(" ")]);
  }
}
const account = (role: string): [string, string] => {
  const found = accounts.get(role);
  check(found, `a ${role} in the sign-ins`);
  return found;
};

// The phone app: registered with an invite, the due list, a PHQ-9 with item 9 answered (the
// crisis message), a retried submission, a side effect marked resolved, a sync.
const clinician = await signedIn(...account("clinician"));
const patient = expect(
  await clinician.POST("/v1/patients", {
    body: { birth_year: 1984, sex: "female", indications: ["treatment_resistant_depression"] },
  }),
  201,
  "patient",
);
const id = { params: { path: { id: patient.id } } };
expect(
  await clinician.POST("/v1/patients/{id}/courses", {
    ...id,
    body: { indication: "treatment_resistant_depression", start_date: minutesFromNow(-3 * 24 * 60).slice(0, 10) },
  }),
  201,
  "course",
);
expect(
  await clinician.POST("/v1/patients/{id}/sessions", {
    ...id,
    body: { route: "iv", started_at: minutesFromNow(-120), dose_mg_per_kg: 0.5, weight_kg: 70 },
  }),
  201,
  "session",
);
const chart = await clinician.GET("/v1/patients/{id}/trajectory.svg", { ...id, parseAs: "text" });
check(chart.response.status === 200, `trajectory chart: ${chart.response.status}`);
const svg: string | undefined = chart.data;
check(svg !== undefined && svg.includes("<svg") && svg.includes("</svg>"), "the chart is SVG");
const invite = expect(await clinician.POST("/v1/patients/{id}/invites", id), 201, "invite");
const tokens = expect(
  await anonymous.POST("/v1/auth/register", {
    body: { email: `ts-${randomUUID().slice(0, 8)}@example.org`, invite_code: invite.invite_code, password: "lantern orbit kettle drum" },
  }),
  201,
  "register",
);
const phone = createClient<paths>({ baseUrl: url, headers: { Authorization: `Bearer ${tokens.access_token}` } });
const syncedFrom = minutesFromNow(-1);

const due: Schemas["DueAssessmentsResponse"] = expect(await phone.GET("/v1/me/due-assessments"), 200, "due list");
check(Array.isArray(due.due_now), "the due list");

const phq9: Schemas["CreateAssessmentRequest"] = {
  id: randomUUID(),
  instrument: "phq9",
  taken_at: minutesFromNow(-5),
  items: [2, 2, 1, 2, 1, 1, 2, 1, 1],
};
const first = expect(await phone.POST("/v1/me/assessments", { body: phq9 }), 201, "PHQ-9");
check(first.crisis_message !== null, "item 9 answered: the crisis message");
check(first.flags.some((f) => f.kind === "suicidal_ideation"), "the urgent flag");
const retried = expect(await phone.POST("/v1/me/assessments", { body: phq9 }), 200, "retried PHQ-9");
check(retried.id === first.id, "a retry creates nothing new");

const reported = expect(
  await phone.POST("/v1/me/side-effects", { body: { effect: "nausea", severity: "mild", onset_at: minutesFromNow(-60) } }),
  201,
  "side effect",
);
const resolved = expect(
  await phone.PATCH("/v1/side-effects/{id}", {
    params: { path: { id: reported.id } },
    body: { resolved_at: minutesFromNow(-10) },
  }),
  200,
  "marked resolved",
);
check(resolved.resolved_at !== null, "resolved");

const changed = expect(
  await phone.GET("/v1/me/assessments", { params: { query: { updated_since: syncedFrom } } }),
  200,
  "sync",
);
check(changed.items.some((a) => a.id === first.id), "the sync returns the new assessment");
// The next sync starts where this one ended: nothing new since.
check(changed.sync_cursor !== undefined, "a sync answers with where to sync on from");
const again = expect(
  await phone.GET("/v1/me/assessments", { params: { query: { updated_since: changed.sync_cursor } } }),
  200,
  "second sync",
);
check(again.items.length === 0, "nothing changed since the last sync");

// The researcher: an aggregate query read through its typed group; the export, granted, as text.
const researcher = await signedIn(...account("researcher"));
const answer = expect(
  await researcher.GET("/v1/research/outcomes", { params: { query: { group_by: ["sex"] } } }),
  200,
  "research outcomes",
);
check(answer.rows.length > 0, "the demo's research cohort releases groups");
for (const row of answer.rows) {
  const sex: Schemas["Sex"] | undefined = row.group.sex;
  check(sex !== undefined, "each row names its sex");
}
const me = expect(await researcher.GET("/v1/me"), 200, "me");
const admin = await signedIn(...account("admin"));
expect(
  await admin.POST("/v1/research-grants", {
    body: {
      researcher_id: me.id,
      purpose: "durability of maintenance infusions",
      reference: "DUA-2026-018",
      expires_at: minutesFromNow(60 * 24 * 30),
    },
  }),
  201,
  "grant",
);
const exported = await researcher.GET("/v1/research/export", { parseAs: "text" });
check(exported.response.status === 200, `export: ${exported.response.status}`);
const text: string | undefined = exported.data;
check(text !== undefined && text.startsWith("kind,"), "the export is CSV with its header");
// As NDJSON, each line is the contract's ExportRow, its categories as enumerations.
const lines = await researcher.GET("/v1/research/export", { params: { query: { format: "ndjson" } }, parseAs: "text" });
check(lines.response.status === 200 && lines.data !== undefined, `export as NDJSON: ${lines.response.status}`);
const rows: Schemas["ExportRow"][] = lines.data.trim().split("\n").map((line) => JSON.parse(line) as Schemas["ExportRow"]);
const kinds: Schemas["ExportKind"][] = ["session", "assessment", "side_effect"];
check(rows.length === text.trim().split("\n").length - 1, "the same rows as the CSV");
check(rows.every((row) => kinds.includes(row.kind)), "every row's kind is one the contract names");

console.log("typescript scenario: passed");
