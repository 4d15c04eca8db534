//! Staff accounts (administrators only). Patients' accounts come from invites.

use actix_web::http::header;
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::accounts;
use crate::api::auth::begin_hash;
use crate::api::context::{Audited, RequestContext};
use crate::api::idempotent::{created_or_replayed, Creation};
use crate::api::pagination::{PageQuery, Paged};
use crate::auth::caller::Caller;
use crate::auth::password::{PasswordHasher, Verified};
use crate::clock;
use crate::domain::account::{Email, Password, Role};

use crate::error::{ApiError, FieldError};
use crate::store::users::{self, NewUserRow, UserChanges, UserFilter, UserRow};
use crate::store::{audit, clinics, Db, DbConnection};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "email": "ana.moreno@clinic.example",
    "password": "lantern orbit kettle", "role": "clinician", "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}))]
pub struct CreateUserRequest {
    /// Client-generated id for an idempotent create.
    pub id: Option<Uuid>,
    pub email: String,
    /// The initial password: 12–128 characters, not common.
    pub password: String,
    /// `admin`, `clinician` or `researcher`; patients join through an invite.
    pub role: Role,
    /// Required for clinicians; absent for administrators and researchers.
    pub clinic_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "email": "ana.moreno@clinic.example",
    "role": "clinician", "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "disabled": false,
    "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct UserResponse {
    pub id: String,
    pub email: String,
    pub role: String,
    pub clinic_id: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Send as If-Match when changing the account.
    pub version: i32,
}

impl From<UserRow> for UserResponse {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            role: row.role,
            clinic_id: row.clinic_id,
            disabled: row.disabled,
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

/// Checks that a role and a clinic go together, and that the clinic exists.
fn check_clinic(
    conn: &mut DbConnection,
    role: Role,
    clinic_id: Option<&str>,
) -> Result<(), ApiError> {
    if role == Role::Patient {
        return Err(ApiError::invalid(
            "role",
            "patients get their accounts through an invite",
        ));
    }
    match (role.belongs_to_a_clinic(), clinic_id) {
        (true, None) => Err(ApiError::invalid("clinic_id", "is required for this role")),
        (false, Some(_)) => Err(ApiError::invalid(
            "clinic_id",
            "must be absent for this role",
        )),
        (true, Some(id)) if clinics::find(conn, id)?.is_none() => {
            Err(ApiError::invalid("clinic_id", "no such clinic"))
        }
        _ => Ok(()),
    }
}

/// Creates a staff account.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = UserResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
        (status = 503, response = crate::openapi::responses::Unavailable),
    )
)]
#[post("/v1/users")]
pub async fn create_user(
    caller: Caller,
    body: web::Json<CreateUserRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    hasher: web::Data<PasswordHasher>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let body = body.into_inner();
    let mut errors = Vec::new();
    let email = Email::parse(&body.email)
        .map_err(|rule| errors.push(FieldError::new("email", rule.message())))
        .ok();
    let password = Password::parse(&body.password, &[body.email.as_str()])
        .map_err(|rule| errors.push(FieldError::new("password", rule.message())))
        .ok();
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::Validation(errors));
    };
    let id = body.id.unwrap_or_else(Uuid::new_v4).to_string();
    let (role, clinic_id) = (body.role, body.clinic_id.map(|c| c.to_string()));

    let admitted = begin_hash(&hasher, &ctx).await?;
    // A retry carries the same password; it matches the stored hash rather than a new one.
    let lookup = id.clone();
    if let Some(existing) = db
        .run(move |conn| {
            users::find(conn, &lookup)
                .map(Some)
                .or_else(none_if_missing)
        })
        .await?
    {
        let same = existing.email == email.as_str()
            && existing.role == role.as_str()
            && existing.clinic_id == clinic_id
            && admitted
                .verify(&body.password, Some(&existing.password_hash))
                .await
                .ok()
                == Some(Verified::Yes { rehashed: None });
        return if same {
            Ok(HttpResponse::Ok().json(UserResponse::from(existing)))
        } else {
            Err(ApiError::Conflict(
                "a record with this id exists with a different body".into(),
            ))
        };
    }
    let hash = admitted
        .hash(&password)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    drop(admitted);
    let creation = db
        .run(move |conn| {
            check_clinic(conn, role, clinic_id.as_deref())?;
            created_or_replayed(
                conn,
                |conn| users::find(conn, &id).map(Some).or_else(none_if_missing),
                |row| {
                    row.email == email.as_str()
                        && row.role == role.as_str()
                        && row.clinic_id == clinic_id
                },
                |conn| {
                    let now = clock::to_db(clock::now());
                    let row = NewUserRow {
                        id: &id,
                        email: email.as_str(),
                        password_hash: &hash,
                        role: role.as_str(),
                        clinic_id: clinic_id.as_deref(),
                        created_at: now,
                        updated_at: now,
                    };
                    users::insert(conn, &row)?;
                    audit::record(
                        conn,
                        &ctx.audit(Some(&caller), account_event("user_created", &id)),
                    )
                },
            )
        })
        .await?;
    Ok(match creation {
        Creation::Created(row) => HttpResponse::Created().json(UserResponse::from(row)),
        Creation::Replayed(row) => HttpResponse::Ok().json(UserResponse::from(row)),
    })
}

fn none_if_missing(
    e: crate::store::StoreError,
) -> Result<Option<UserRow>, crate::store::StoreError> {
    match e {
        crate::store::StoreError::NotFound => Ok(None),
        other => Err(other),
    }
}

fn account_event<'a>(action: &'a str, id: &'a str) -> Audited<'a> {
    Audited {
        action,
        resource_type: "account",
        resource_id: Some(id),
        patient_id: None,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    pub role: Option<Role>,
    pub clinic_id: Option<Uuid>,
}

/// Lists accounts, oldest first.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    params(UserListQuery, PageQuery),
    responses(
        (status = 200, description = "One page of accounts", body = Paged<UserResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/users")]
pub async fn list_users(
    caller: Caller,
    filter: web::Query<UserListQuery>,
    page: web::Query<PageQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let page = page.page()?;
    let fetch = page.clone();
    let filter = UserFilter {
        role: filter.role.map(|r| r.as_str().to_owned()),
        clinic_id: filter.clinic_id.map(|c| c.to_string()),
    };
    let rows = db
        .run(move |conn| users::list(conn, &filter, &fetch))
        .await?;
    Ok(HttpResponse::Ok().json(Paged::from_rows(
        rows,
        &page,
        |r| (r.created_at, r.id.as_str()),
        UserResponse::from,
    )))
}

/// One account.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account", body = UserResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/users/{id}")]
pub async fn get_user(
    caller: Caller,
    id: web::Path<Uuid>,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let id = id.into_inner().to_string();
    let row = db.run(move |conn| users::find(conn, &id)).await?;
    Ok(versioned(UserResponse::from(row)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"disabled": true}))]
pub struct UpdateUserRequest {
    pub role: Option<Role>,
    /// A clinic id, or null to remove the clinic (with a role that has none).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub clinic_id: Option<Option<Uuid>>,
    /// A disabled account cannot sign in, its refresh tokens are revoked at once, and its
    /// access tokens stop working on their next use.
    pub disabled: Option<bool>,
}

/// Distinguishes a field sent as null (`Some(None)`) from a field not sent (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes an account's role, clinic or disabled state. A patient's app account can only be
/// disabled or enabled again. Disabling revokes every token the account holds at once.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The account's id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "The version the change is based on, such as \"3\"; 412 when stale"),
    ),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The changed account", body = UserResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 412, response = crate::openapi::responses::PreconditionFailed),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[patch("/v1/users/{id}")]
pub async fn update_user(
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<UpdateUserRequest>,
    req: HttpRequest,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let expected_version = if_match(&req)?;
    let id = id.into_inner().to_string();
    let body = body.into_inner();
    let row = db
        .transaction(move |conn| {
            let current = users::find(conn, &id)?;
            let current_role = current
                .role
                .parse::<Role>()
                .map_err(|_| ApiError::Forbidden)?;
            if current_role == Role::Patient {
                // A patient's app account follows its patient: only access can change.
                patient_account_change(&body)?;
            }
            let role = body.role.unwrap_or(current_role);
            let clinic_id = match body.clinic_id {
                Some(new) => new.map(|c| c.to_string()),
                None => current.clinic_id.clone(),
            };
            if current_role != Role::Patient {
                check_clinic(conn, role, clinic_id.as_deref())?;
            }
            let changes = UserChanges {
                role: body.role.map(|r| r.as_str().to_owned()),
                clinic_id: body.clinic_id.map(|c| c.map(|c| c.to_string())),
                disabled: body.disabled,
            };
            let now = clock::to_db(clock::now());
            let updated = users::update(conn, &id, expected_version, &changes, now)?;
            if updated.disabled && !current.disabled {
                accounts::revoke_access(conn, &id, now)?;
            }
            audit::record(
                conn,
                &ctx.audit(Some(&caller), account_event("user_updated", &id)),
            )?;
            Ok::<_, ApiError>(users::find(conn, &id)?)
        })
        .await?;
    Ok(versioned(UserResponse::from(row)))
}

/// A patient's app account may be disabled and enabled again; its role and clinic never
/// change (it would stay linked to the patient's record).
pub(crate) fn patient_account_change(body: &UpdateUserRequest) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if body.role.is_some() {
        errors.push(FieldError::new(
            "role",
            "a patient's app account keeps its role",
        ));
    }
    if body.clinic_id.is_some() {
        errors.push(FieldError::new(
            "clinic_id",
            "a patient's app account keeps its patient's clinic",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Reads `If-Match: "3"` (or `3`, or a weak `W/"3"`).
pub fn if_match(req: &HttpRequest) -> Result<Option<i32>, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse()
        .map(Some)
        .map_err(|_| ApiError::invalid("If-Match", "must be the record's version, such as \"3\""))
}

fn versioned(user: UserResponse) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", user.version)))
        .json(user)
}
