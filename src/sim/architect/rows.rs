//! Data table rows: `GET …/datatables/{id}/rows` paged by key (`showbrief=true`, the default,
//! serves only each row's `key`; `showbrief=false` the whole row), one row by key, `POST` one row
//! (an existing key → 409) and `PUT` by key; rows are checked against the table's schema
//! (`additionalProperties: false`, property types, a string `key`). Rows take their own
//! permissions (`architect:datatableRow:view`/`add`/`edit`) and are counted per table.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{Query, count_rows, lock, missing_permission, not_found, page_of, write};
use crate::sim::objects::ObjectKind;
use crate::sim::{SimState, admit, error_response, json_response};

const TABLE: ObjectKind = ObjectKind::DataTable;

/// Authentication, throttling, the table's row count and the row permission `action`.
async fn admit_rows(s: &SimState, headers: &HeaderMap, table: &str, action: &str) -> Result<(), Response> {
    admit(s, headers).await?;
    count_rows(s, table);
    *lock(&s.stats.architect_requests)
        .entry("datatables.rows".into())
        .or_default() += 1;
    let permission = format!("architect:datatableRow:{action}");
    if s.config.denied_permissions.contains(&permission) {
        return Err(missing_permission(&permission));
    }
    Ok(())
}

fn bad(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "flows.datatables.schema.exception", message)
}

/// Why `row` does not fit `schema`, if it does not.
pub(super) fn misfit(schema: &Value, row: &Value) -> Option<String> {
    let Some(fields) = row.as_object() else {
        return Some("a row must be a JSON object".into());
    };
    if !fields.get("key").is_some_and(Value::is_string) {
        return Some("a row needs a string `key`".into());
    }
    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
    for (name, value) in fields {
        let Some(p) = properties.get(name) else {
            return Some(format!("the property {name} is not in the table's schema"));
        };
        let fits = match p["type"].as_str().unwrap_or("string") {
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            _ => value.is_string(),
        };
        if !fits && !value.is_null() {
            return Some(format!("the property {name} must be a {}", p["type"]));
        }
    }
    None
}

/// `GET /api/v2/flows/datatables/{id}/rows`.
pub(super) async fn list(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admit_rows(&s, &headers, &id, "view").await {
        return r;
    }
    let q = Query::parse(query);
    let brief = q.flag("showbrief", true);
    let rows: Vec<Value> = {
        let objects = s.objects();
        if objects.find(TABLE, &id).is_none_or(|t| super::hidden(&s, t)) {
            return not_found(TABLE, &id);
        }
        objects
            .rows
            .get(&id)
            .into_iter()
            .flatten()
            .map(|r| {
                if brief {
                    let mut only = Map::new();
                    only.insert("key".into(), r["key"].clone());
                    Value::Object(only)
                } else {
                    r.clone()
                }
            })
            .collect()
    };
    match page_of(rows, &q, 100, &format!("{}/{id}/rows", TABLE.path())) {
        Ok(body) => json_response(body.to_string()),
        Err(r) => r,
    }
}

/// `GET /api/v2/flows/datatables/{id}/rows/{key}`.
pub(super) async fn get_one(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
) -> Response {
    if let Err(r) = admit_rows(&s, &headers, &id, "view").await {
        return r;
    }
    let row = s
        .objects()
        .rows
        .get(&id)
        .and_then(|rows| rows.iter().find(|r| r["key"] == key.as_str()).cloned());
    match row {
        Some(r) => json_response(r.to_string()),
        None => not_found(TABLE, &format!("{id}/rows/{key}")),
    }
}

/// Puts `row` into table `id` (`create`: refused when the key exists; else: refused when not).
fn store_row(s: &SimState, id: &str, key: Option<&str>, row: Value, create: bool) -> Response {
    let mut objects = s.objects();
    let Some(table) = objects.find(TABLE, id) else {
        return not_found(TABLE, id);
    };
    if let Some(why) = misfit(&table.body["schema"], &row) {
        return bad(&why);
    }
    let row_key = row["key"].as_str().unwrap_or_default().to_string();
    if key.is_some_and(|k| k != row_key) {
        return bad("the row's key does not match the key in the path");
    }
    let rows = objects.rows.entry(id.to_string()).or_default();
    let at = rows.iter().position(|r| r["key"] == row_key.as_str());
    match (at, create) {
        (Some(_), true) => error_response(
            StatusCode::CONFLICT,
            "flows.datatables.row.already.exists",
            &format!("A row with key {row_key:?} already exists in data table {id}"),
        ),
        (None, false) => not_found(TABLE, &format!("{id}/rows/{row_key}")),
        (Some(i), false) => {
            rows[i] = row.clone();
            json_response(row.to_string())
        }
        (None, true) => {
            let i = rows.partition_point(|r| r["key"].as_str().unwrap_or_default() < row_key.as_str());
            rows.insert(i, row.clone());
            json_response(row.to_string())
        }
    }
}

/// `POST /api/v2/flows/datatables/{id}/rows`: one row.
pub(super) async fn create(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    if let Err(r) = admit_rows(&s, &headers, &id, "add").await {
        return r;
    }
    s.stats
        .write_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Ok(row) = serde_json::from_str::<Value>(&body) else {
        return bad("The request body is not JSON");
    };
    let stored = store_row(&s, &id, None, row, true);
    write::answer_after_write(&s, TABLE, stored)
}

/// `PUT /api/v2/flows/datatables/{id}/rows/{key}`.
pub(super) async fn update(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
    body: String,
) -> Response {
    if let Err(r) = admit_rows(&s, &headers, &id, "edit").await {
        return r;
    }
    s.stats
        .write_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Ok(row) = serde_json::from_str::<Value>(&body) else {
        return bad("The request body is not JSON");
    };
    let stored = store_row(&s, &id, Some(&key), row, false);
    write::answer_after_write(&s, TABLE, stored)
}

/// `DELETE /api/v2/flows/datatables/{id}/rows/{key}`.
pub(super) async fn delete(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
) -> Response {
    if let Err(r) = admit_rows(&s, &headers, &id, "delete").await {
        return r;
    }
    s.stats
        .write_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let removed = {
        let mut objects = s.objects();
        let rows = objects.rows.get_mut(&id);
        rows.and_then(|rows| {
            let i = rows.iter().position(|r| r["key"] == key.as_str())?;
            Some(rows.remove(i))
        })
    };
    match removed {
        Some(_) => write::answer_after_write(&s, TABLE, StatusCode::NO_CONTENT.into_response()),
        None => not_found(TABLE, &format!("{id}/rows/{key}")),
    }
}
