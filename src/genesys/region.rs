//! Genesys Cloud regions: the table of domains, and parsing of the names users type.
//!
//! A region is accepted as its domain (`usw2.pure.cloud`), its AWS-style name (`us-west-2`, as CX as
//! Code's `GENESYSCLOUD_REGION` takes it) or the SDK's name (`us_west_2`).

use std::fmt;

/// One Genesys Cloud region: its SDK name and its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// The SDK's name, e.g. `us_west_2`.
    pub sdk_name: &'static str,
    /// The region's domain, e.g. `usw2.pure.cloud`.
    pub domain: &'static str,
}

/// Every region the official SDKs know (`genesys-api.md`).
pub const REGIONS: &[Region] = &[
    Region {
        sdk_name: "us_east_1",
        domain: "mypurecloud.com",
    },
    Region {
        sdk_name: "us_east_2",
        domain: "use2.us-gov-pure.cloud",
    },
    Region {
        sdk_name: "us_west_2",
        domain: "usw2.pure.cloud",
    },
    Region {
        sdk_name: "ca_central_1",
        domain: "cac1.pure.cloud",
    },
    Region {
        sdk_name: "sa_east_1",
        domain: "sae1.pure.cloud",
    },
    Region {
        sdk_name: "mx_central_1",
        domain: "mxc1.pure.cloud",
    },
    Region {
        sdk_name: "eu_west_1",
        domain: "mypurecloud.ie",
    },
    Region {
        sdk_name: "eu_west_2",
        domain: "euw2.pure.cloud",
    },
    Region {
        sdk_name: "eu_central_1",
        domain: "mypurecloud.de",
    },
    Region {
        sdk_name: "eu_central_2",
        domain: "euc2.pure.cloud",
    },
    Region {
        sdk_name: "eusc_de_east_1",
        domain: "edee1.eusc-pure.cloud",
    },
    Region {
        sdk_name: "me_central_1",
        domain: "mec1.pure.cloud",
    },
    Region {
        sdk_name: "ap_south_1",
        domain: "aps1.pure.cloud",
    },
    Region {
        sdk_name: "ap_southeast_1",
        domain: "apse1.pure.cloud",
    },
    Region {
        sdk_name: "ap_southeast_2",
        domain: "mypurecloud.com.au",
    },
    Region {
        sdk_name: "ap_northeast_1",
        domain: "mypurecloud.jp",
    },
    Region {
        sdk_name: "ap_northeast_2",
        domain: "apne2.pure.cloud",
    },
    Region {
        sdk_name: "ap_northeast_3",
        domain: "apne3.pure.cloud",
    },
];

/// The region used when none is configured, as in the official SDKs.
pub const DEFAULT_REGION: Region = REGIONS[0];

/// A region name that matches no known region.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown Genesys Cloud region `{given}`; use one of: {}", valid_region_list())]
pub struct UnknownRegion {
    /// What the user typed.
    pub given: String,
}

fn valid_region_list() -> String {
    REGIONS
        .iter()
        .map(|r| format!("{} ({})", r.domain, r.aws_name()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Region {
    /// Parses a domain, an AWS-style name or an SDK name, ignoring case and surrounding blanks.
    /// A leading `api.`/`login.` or `https://` is tolerated, since users paste host names.
    pub fn parse(input: &str) -> Result<Region, UnknownRegion> {
        let mut s = input.trim().to_ascii_lowercase();
        for prefix in ["https://", "http://"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                s = rest.to_string();
            }
        }
        let s = s.trim_end_matches('/');
        let s = s.strip_prefix("api.").or_else(|| s.strip_prefix("login.")).unwrap_or(s);
        let underscored = s.replace('-', "_");
        REGIONS
            .iter()
            .find(|r| r.domain == s || r.sdk_name == underscored)
            .copied()
            .ok_or_else(|| UnknownRegion {
                given: input.to_string(),
            })
    }

    /// The AWS-style name, e.g. `us-west-2`.
    pub fn aws_name(&self) -> String {
        self.sdk_name.replace('_', "-")
    }

    /// The Platform API base URL, `https://api.<domain>`.
    pub fn api_url(&self) -> String {
        format!("https://api.{}", self.domain)
    }

    /// The OAuth login base URL, `https://login.<domain>`.
    pub fn login_url(&self) -> String {
        format!("https://login.{}", self.domain)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_domain_aws_and_sdk_names() {
        for input in [
            "usw2.pure.cloud",
            "us-west-2",
            "us_west_2",
            " US-WEST-2 ",
            "api.usw2.pure.cloud",
        ] {
            assert_eq!(Region::parse(input).unwrap().domain, "usw2.pure.cloud", "{input}");
        }
        assert_eq!(Region::parse("eu-central-1").unwrap().domain, "mypurecloud.de");
    }

    #[test]
    fn every_region_round_trips_through_each_spelling() {
        for r in REGIONS {
            assert_eq!(Region::parse(r.domain).unwrap(), *r);
            assert_eq!(Region::parse(&r.aws_name()).unwrap(), *r);
            assert_eq!(Region::parse(r.sdk_name).unwrap(), *r);
        }
    }

    #[test]
    fn unknown_region_lists_the_valid_ones() {
        let err = Region::parse("mars-north-1").unwrap_err().to_string();
        assert!(err.contains("mars-north-1"));
        assert!(err.contains("mypurecloud.ie (eu-west-1)"));
    }

    #[test]
    fn hosts_follow_the_sdk_convention() {
        let r = Region::parse("eu-west-1").unwrap();
        assert_eq!(r.api_url(), "https://api.mypurecloud.ie");
        assert_eq!(r.login_url(), "https://login.mypurecloud.ie");
    }
}
