//! The org a client reads (`GET /api/v2/organizations/me`) and the guard against backing up the
//! wrong one: `api_url` is the same for every org of a region, so only this tells them apart.

use serde::{Deserialize, Serialize};

/// An org's identity, as `organizations/me` serves it and the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// Org id (a UUID).
    pub id: String,
    /// Display name (can be changed by an admin).
    #[serde(default)]
    pub name: Option<String>,
    /// The org's short name: unique and immutable.
    #[serde(default)]
    pub third_party_org_name: Option<String>,
    /// The org's domain.
    #[serde(default)]
    pub domain: Option<String>,
}

impl Organization {
    /// True when `expected` names this org by id or short name (case-insensitive).
    pub fn is(&self, expected: &str) -> bool {
        let expected = expected.trim();
        self.id.eq_ignore_ascii_case(expected)
            || self
                .third_party_org_name
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(expected))
    }

    /// `short name (id)`, or the id alone.
    pub fn describe(&self) -> String {
        crate::manifest::Org::from(self).describe()
    }
}

/// How the manifest records an org (its own type, serialized as `organizations/me` names it).
impl From<&Organization> for crate::manifest::Org {
    fn from(o: &Organization) -> Self {
        crate::manifest::Org {
            id: o.id.clone(),
            name: o.name.clone(),
            third_party_org_name: o.third_party_org_name.clone(),
            domain: o.domain.clone(),
        }
    }
}

/// The org a manifest recorded, to compare with (or describe like) the org of the credentials.
impl From<&crate::manifest::Org> for Organization {
    fn from(o: &crate::manifest::Org) -> Self {
        Organization {
            id: o.id.clone(),
            name: o.name.clone(),
            third_party_org_name: o.third_party_org_name.clone(),
            domain: o.domain.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_org_is_named_by_id_or_short_name_in_any_case() {
        let org = Organization {
            id: "9f1c".into(),
            name: Some("Acme Prod".into()),
            third_party_org_name: Some("acme-prod".into()),
            domain: None,
        };
        assert!(org.is("9F1C") && org.is("ACME-prod") && org.is(" acme-prod "));
        assert!(
            !org.is("Acme Prod"),
            "the display name can change, so it does not identify an org"
        );
        assert!(!org.is("acme-test"));
    }
}
