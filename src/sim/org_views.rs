//! The simulated org's identity and cross-division view: `GET /api/v2/organizations/me` and
//! `GET /api/v2/flows/divisionviews`, which also names flows in divisions the client cannot list.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{SimState, admit, error_response, json_response};

/// `GET /api/v2/organizations/me`.
pub(super) async fn organization(State(s): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    match s.config.organization_status {
        Some(403) => error_response(
            StatusCode::FORBIDDEN,
            "missing.permissions",
            "You are missing the following permission: organization:view",
        ),
        Some(code) => error_response(
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "service.unavailable",
            "The service is currently unavailable",
        ),
        None => json_response(s.config.organization.to_string()),
    }
}

/// The default org served: an id, a display name and a short name.
pub fn default_organization() -> Value {
    json!({
        "id": "5f3b2c1d-0000-4000-a000-00000000f10a",
        "name": "Simulated Contact Center",
        "thirdPartyOrgName": "sim-org",
        "domain": "sim-org",
        "state": "active",
        "version": 42,
        "selfUri": "/api/v2/organizations/5f3b2c1d-0000-4000-a000-00000000f10a"
    })
}

/// `GET /api/v2/flows/divisionviews`: every flow, listed or hidden, in the view's reduced shape.
pub(super) async fn divisionviews(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    if s.config.flow_search_denied {
        return error_response(
            StatusCode::FORBIDDEN,
            "missing.permissions",
            "You are missing the following permission: architect:flow:search",
        );
    }
    let (mut page_number, mut page_size) = (1u64, 25u64);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.parse::<u64>()) {
            ("pageNumber", Ok(n)) if n > 0 => page_number = n,
            ("pageSize", Ok(n)) if n > 0 => page_size = n.min(s.config.max_page_size),
            _ => {}
        }
    }
    // Only the page served is built, so paging a large org costs no quadratic work.
    let (views, total) = {
        let org = s.org();
        let all = org.flows.iter().chain(s.config.hidden_flows.iter());
        let total = (org.flows.len() + s.config.hidden_flows.len()) as u64;
        let start = (page_number - 1).saturating_mul(page_size) as usize;
        let views: Vec<Value> = all
            .skip(start)
            .take(page_size as usize)
            .map(|f| view_of(&f.meta))
            .collect();
        (views, total)
    };
    let body = json!({
        "entities": views,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": total.div_ceil(page_size),
    });
    json_response(body.to_string())
}

fn view_of(meta: &Value) -> Value {
    let mut view = serde_json::Map::new();
    for key in [
        "id",
        "name",
        "division",
        "type",
        "description",
        "publishedVersion",
        "debugVersion",
    ] {
        if let Some(v) = meta.get(key) {
            view.insert(key.into(), v.clone());
        }
    }
    Value::Object(view)
}
