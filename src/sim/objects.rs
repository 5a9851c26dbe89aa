//! The simulated org's non-flow objects — queues, data actions, user prompts, data tables, users,
//! flow outcomes and milestones — that configurations reference by id and name. Each kind is
//! served at its real endpoint, paged like flows and filtered by `name`. A catalogue is derived
//! from a seed, so the org a backup came from and a rebuilt org can hold the same names under
//! other ids ([`SimObjects::rebuilt`]), and one object can be missing ([`SimObjects::without`]).
//!
//! Kinds are an open list on purpose: Architect objects (schedules, schedule groups, emergency
//! groups, IVRs…) are added as further [`ObjectKind`] variants with their path and shape.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::data::uuid_from;
use super::{SimState, admit, error_response, json_response};

/// A kind of object configurations reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A routing queue (`que` literals).
    Queue,
    /// An integration data action (ids `custom_-_<guid>`).
    DataAction,
    /// A user prompt (`pmt` refs in expressions).
    UserPrompt,
    /// An Architect data table (`datatableId`/`datatableName`).
    DataTable,
    /// A user.
    User,
    /// A flow outcome (`outcomeId`).
    FlowOutcome,
    /// A flow milestone (`milestoneId`/`milestoneName`).
    FlowMilestone,
}

impl ObjectKind {
    /// Every kind the simulated org serves.
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Queue,
        ObjectKind::DataAction,
        ObjectKind::UserPrompt,
        ObjectKind::DataTable,
        ObjectKind::User,
        ObjectKind::FlowOutcome,
        ObjectKind::FlowMilestone,
    ];

    /// The key of a configuration's `manifest` that lists objects of this kind.
    pub fn manifest_key(self) -> &'static str {
        match self {
            ObjectKind::Queue => "queue",
            ObjectKind::DataAction => "dataAction",
            ObjectKind::UserPrompt => "userPrompt",
            ObjectKind::DataTable => "dataTable",
            ObjectKind::User => "user",
            ObjectKind::FlowOutcome => "flowOutcome",
            ObjectKind::FlowMilestone => "flowMilestone",
        }
    }

    /// The kind a manifest key names, if the org serves it.
    pub fn from_manifest_key(key: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.manifest_key() == key)
    }

    /// The listing endpoint.
    pub fn path(self) -> &'static str {
        match self {
            ObjectKind::Queue => "/api/v2/routing/queues",
            ObjectKind::DataAction => "/api/v2/integrations/actions",
            ObjectKind::UserPrompt => "/api/v2/architect/prompts",
            ObjectKind::DataTable => "/api/v2/flows/datatables",
            ObjectKind::User => "/api/v2/users",
            ObjectKind::FlowOutcome => "/api/v2/flows/outcomes",
            ObjectKind::FlowMilestone => "/api/v2/flows/milestones",
        }
    }

    /// How many the standard catalogue holds, and the names they get.
    fn names(self) -> Vec<String> {
        let list: &[&str] = match self {
            ObjectKind::Queue => &[
                "Sales",
                "Support",
                "Billing",
                "Claims",
                "Renewals",
                "Spanish Support",
                "VIP",
                "Callbacks",
                "Escalations",
                "After Hours",
                "Technical L2",
                "Retention",
            ],
            ObjectKind::DataAction => &[
                "Get Customer By ANI",
                "Create Case",
                "Get Account Balance",
                "Lookup Order Status",
                "Post Survey Result",
                "Verify PIN",
            ],
            ObjectKind::UserPrompt => &[
                "Welcome",
                "MainMenu",
                "ClosedMessage",
                "HolidayMessage",
                "HoldMusic",
                "TransferNotice",
                "Goodbye",
                "InvalidEntry",
                "EnterAccountNumber",
                "SurveyIntro",
            ],
            ObjectKind::DataTable => &["Holiday Dates", "Branch Directory", "VIP Numbers", "Routing Overrides"],
            ObjectKind::User => &["Jane Doe", "Sam Okafor", "Priya Raman", "Luis Ortega", "Mei Chen"],
            ObjectKind::FlowOutcome => &["Self Service Success", "Transferred To Agent", "Abandoned"],
            ObjectKind::FlowMilestone => &["Identified Caller", "Reached Menu", "Verified PIN"],
        };
        list.iter().map(|s| s.to_string()).collect()
    }

    /// The entity a listing serves for an object of this kind.
    fn entity(self, id: &str, name: &str) -> Value {
        let self_uri = format!("{}/{id}", self.path());
        let division = json!({"id": "7e0b6c5a-0000-4000-a000-000000000001", "name": "Home"});
        match self {
            ObjectKind::Queue => json!({"id": id, "name": name, "division": division, "memberCount": 4,
                "mediaSettings": {"call": {"alertingTimeoutSeconds": 8}}, "selfUri": self_uri}),
            ObjectKind::DataAction => json!({"id": id, "name": name, "category": "Salesforce",
                "integrationId": "3c1f0a2e-0000-4000-a000-00000000d0d0", "secure": false, "selfUri": self_uri}),
            ObjectKind::UserPrompt => json!({"id": id, "name": name, "description": format!("{name} prompt"),
                "resources": [{"language": "en-us", "text": format!("{name} text"), "uploadStatus": "transcoded"}],
                "selfUri": self_uri}),
            ObjectKind::DataTable => json!({"id": id, "name": name, "division": division,
                "schema": {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
                    "required": ["key"], "properties": {"key": {"title": "Key", "type": "string"}}},
                "selfUri": self_uri}),
            ObjectKind::User => json!({"id": id, "name": name, "division": division,
                "email": format!("{}@example.com", name.to_lowercase().replace(' ', ".")), "state": "active",
                "selfUri": self_uri}),
            ObjectKind::FlowOutcome | ObjectKind::FlowMilestone => {
                json!({"id": id, "name": name, "division": division, "selfUri": self_uri})
            }
        }
    }
}

/// One object of the org.
#[derive(Debug, Clone, PartialEq)]
pub struct SimObject {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its id in this org.
    pub id: String,
    /// Its name (what another org finds it by).
    pub name: String,
}

/// The non-flow objects of an org.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimObjects {
    /// Every object, by kind in catalogue order.
    pub objects: Vec<SimObject>,
}

/// The seed of the catalogue every generated configuration references.
const STANDARD_SEED: u64 = 0x0B1EC75;

impl SimObjects {
    /// The catalogue generated configurations reference (the same ids every time).
    pub fn standard() -> SimObjects {
        static STANDARD: OnceLock<SimObjects> = OnceLock::new();
        STANDARD.get_or_init(|| SimObjects::catalogue(STANDARD_SEED)).clone()
    }

    /// The same names under ids derived from `seed`.
    fn catalogue(seed: u64) -> SimObjects {
        let mut rng = StdRng::seed_from_u64(seed);
        let objects = ObjectKind::ALL
            .into_iter()
            .flat_map(|kind| kind.names().into_iter().map(move |name| (kind, name)))
            .map(|(kind, name)| {
                let guid = uuid_from(&mut rng);
                let id = match kind {
                    ObjectKind::DataAction => format!("custom_-_{guid}"),
                    _ => guid,
                };
                SimObject { kind, id, name }
            })
            .collect();
        SimObjects { objects }
    }

    /// The standard names under new ids, as in an org rebuilt from scratch (`salt` picks the ids).
    pub fn rebuilt(salt: u64) -> SimObjects {
        SimObjects::catalogue(STANDARD_SEED ^ salt.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// These objects without the one of `kind` named `name`.
    pub fn without(mut self, kind: ObjectKind, name: &str) -> SimObjects {
        self.objects.retain(|o| !(o.kind == kind && o.name == name));
        self
    }

    /// Objects of one kind.
    pub fn of_kind(&self, kind: ObjectKind) -> impl Iterator<Item = &SimObject> {
        self.objects.iter().filter(move |o| o.kind == kind)
    }

    /// The object of `kind` with this id, if the org holds it.
    pub fn find(&self, kind: ObjectKind, id: &str) -> Option<&SimObject> {
        self.of_kind(kind).find(|o| o.id == id)
    }

    /// The object of `kind` named `name` (exactly).
    pub fn named(&self, kind: ObjectKind, name: &str) -> Option<&SimObject> {
        self.of_kind(kind).find(|o| o.name == name)
    }
}

/// The routes serving every kind's listing.
pub(super) fn routes() -> Router<Arc<SimState>> {
    ObjectKind::ALL.into_iter().fold(Router::new(), |router, kind| {
        router.route(
            kind.path(),
            get(move |s: State<Arc<SimState>>, h: HeaderMap, q: RawQuery| list(s, h, q, kind)),
        )
    })
}

/// True when `name` matches the `name` filter: exact (case-insensitive), or with a leading or
/// trailing `*` as a wildcard, as the routing and prompt listings accept.
fn name_matches(filter: &str, name: &str) -> bool {
    let (f, n) = (filter.to_lowercase(), name.to_lowercase());
    match (f.strip_prefix('*'), f.strip_suffix('*')) {
        (Some(rest), _) if rest.ends_with('*') => n.contains(rest.trim_end_matches('*')),
        (Some(rest), _) => n.ends_with(rest),
        (None, Some(rest)) => n.starts_with(rest),
        (None, None) => f == n,
    }
}

/// `GET` a kind's listing: `pageNumber`, `pageSize` (at most the org's maximum), `name`.
async fn list(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    kind: ObjectKind,
) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    let (mut page, mut size, mut names) = (1u64, 25u64, Vec::new());
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "pageNumber" => page = v.parse().unwrap_or(0),
            "pageSize" => size = v.parse().unwrap_or(0),
            "name" => names.extend(v.split(',').map(str::to_string)),
            _ => {}
        }
    }
    if page == 0 || size == 0 || size > s.config.max_page_size {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid.value",
            &format!(
                "pageNumber must be positive and pageSize between 1 and {}",
                s.config.max_page_size
            ),
        );
    }
    let matching: Vec<Value> = s
        .config
        .objects
        .of_kind(kind)
        .filter(|o| names.is_empty() || names.iter().any(|n| name_matches(n, &o.name)))
        .map(|o| kind.entity(&o.id, &o.name))
        .collect();
    let total = matching.len() as u64;
    let page_count = total.div_ceil(size);
    let start = ((page - 1).saturating_mul(size) as usize).min(matching.len());
    let end = (start + size as usize).min(matching.len());
    let uri = |n: u64| format!("{}?pageSize={size}&pageNumber={n}", kind.path());
    let mut body = json!({
        "entities": &matching[start..end], "pageSize": size, "pageNumber": page, "total": total,
        "pageCount": page_count, "firstUri": uri(1), "selfUri": uri(page), "lastUri": uri(page_count.max(1)),
    });
    if page < page_count {
        body["nextUri"] = uri(page + 1).into();
    }
    json_response(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuilt_org_holds_the_same_names_under_other_ids() {
        let (a, b) = (SimObjects::standard(), SimObjects::rebuilt(1));
        assert_eq!(a.objects.len(), b.objects.len());
        for (x, y) in a.objects.iter().zip(&b.objects) {
            assert_eq!((x.kind, &x.name), (y.kind, &y.name));
            assert_ne!(x.id, y.id);
        }
    }

    #[test]
    fn name_filters_take_wildcards() {
        assert!(name_matches("sales", "Sales"));
        assert!(name_matches("sal*", "Sales"));
        assert!(name_matches("*les", "Sales"));
        assert!(name_matches("*al*", "Sales"));
        assert!(!name_matches("sale", "Sales"));
    }
}
