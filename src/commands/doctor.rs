//! `flowvault doctor` (the settings of `export`): a checklist, each failure with its fix —
//! settings, login, org, listing, one configuration, the optional flow search, and the
//! destination (a probe written and deleted) — then which permissions each feature needs.
//! Exit 0 when every check passes, 1 otherwise. No secret is printed.

use std::io::Write;

use super::{Outcome, exit};
use crate::genesys::{ApiError, AuthError, GenesysClient};
use crate::preflight::{self, Check};
use crate::settings::{ExportSettings, Flags, process_env};

/// Runs the checks and prints them; exit 0 when every check passes. `restore`: `Some(publish)` also checks what
/// `restore --apply` (with `--publish`) needs.
pub async fn run(flags: &Flags, restore: Option<bool>) -> Outcome {
    let mut checks = Vec::new();
    match ExportSettings::resolve(flags, &process_env) {
        Err(e) => checks.push(Check::fail(
            "settings",
            e.to_string(),
            "fix the flag or variable named above",
        )),
        Ok(settings) => {
            checks.push(Check::pass("settings", "every setting is valid"));
            if let Some(client) = genesys_checks(&settings, &mut checks).await
                && let Some(publish) = restore
            {
                restore_checks(&client, publish, &mut checks).await;
            }
            checks.push(preflight::check_destination(&settings.destination, &settings.store).await);
            checks.push(preflight::check_scratch(settings.export_options().since.as_ref()).await);
        }
    }
    print(&mut std::io::stdout().lock(), &checks)?;
    Ok(super::status(if checks.iter().all(|c| c.ok) {
        exit::COMPLETE
    } else {
        exit::FATAL
    }))
}

/// The checklist, then the permissions table.
fn print(out: &mut impl Write, checks: &[Check]) -> std::io::Result<()> {
    for c in checks {
        writeln!(
            out,
            "{} {:<14} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.step,
            c.detail
        )?;
        if let Some(fix) = &c.fix {
            writeln!(out, "     {:<14} fix: {fix}", "")?;
        }
    }
    writeln!(
        out,
        "\nwhat each feature needs (Genesys role permissions | S3 actions):"
    )?;
    for (feature, genesys, s3) in preflight::PERMISSIONS {
        writeln!(out, "  {feature:<22} {genesys} | {s3}")?;
    }
    Ok(())
}

fn login_fix(e: &ApiError) -> String {
    match e {
        ApiError::Auth(AuthError::Rejected { .. }) => {
            "check GENESYSCLOUD_OAUTHCLIENT_ID / _SECRET (a Client Credentials grant) and that --region is the org's region".into()
        }
        _ => "check --region / --api-url and that the login host is reachable (proxy, firewall, NAT)".into(),
    }
}

/// The Genesys checks; the client when login worked.
async fn genesys_checks(settings: &ExportSettings, checks: &mut Vec<Check>) -> Option<GenesysClient> {
    let client = match GenesysClient::connect(settings.client.clone()) {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::fail("login", e.to_string(), "see the error"));
            return None;
        }
    };
    match client.token_lifetime().await {
        Ok(lifetime) => checks.push(preflight::token_check(lifetime)),
        Err(e) => {
            let fix = login_fix(&e);
            checks.push(Check::fail("login", e.to_string(), fix));
            return None;
        }
    }
    read_checks(&client, settings, checks).await;
    Some(client)
}

/// Org, listing, one configuration and the optional flow search.
async fn read_checks(client: &GenesysClient, settings: &ExportSettings, checks: &mut Vec<Check>) {
    match (client.organization().await, settings.expect_org.as_deref()) {
        (Ok(org), Some(want)) if !org.is(want) => checks.push(Check::fail(
            "org",
            format!("the credentials belong to org {}, not `{want}`", org.describe()),
            "use the secret of the right org, or fix --expect-org",
        )),
        (Ok(org), _) => checks.push(Check::pass("org", format!("org {}", org.describe()))),
        (Err(e), _) => checks.push(Check::fail(
            "org",
            e.to_string(),
            "GET /api/v2/organizations/me needs no permission: check the API URL",
        )),
    }
    let first = match client.list_flows_page(1, 1, None).await {
        Ok(page) => {
            checks.push(Check::pass(
                "listing",
                format!("{} flows visible to this client", page.total.unwrap_or(0)),
            ));
            page.entities
                .unwrap_or_default()
                .into_iter()
                .find_map(|r| crate::genesys::FlowSummary::from_raw(r).ok())
        }
        Err(e) => {
            checks.push(Check::fail(
                "listing",
                e.to_string(),
                "give the OAuth client's role architect:flow:view and the flows' divisions",
            ));
            None
        }
    };
    if let Some(flow) = first {
        match client.latest_configuration(&flow.id).await {
            Ok(c) => checks.push(Check::pass(
                "configuration",
                format!("read flow {} ({} bytes)", flow.id, c.body.get().len()),
            )),
            Err(e) => checks.push(Check::fail(
                "configuration",
                e.to_string(),
                "the role needs architect:flow:view in the flow's division",
            )),
        }
    }
    match client.divisionviews_page(1, 1).await {
        Ok(_) => checks.push(Check::pass(
            "flow search",
            "architect:flow:search granted: flows in divisions the role cannot see will be reported",
        )),
        Err(ApiError::Forbidden { .. }) => checks.push(Check::pass(
            "flow search",
            "architect:flow:search not granted (optional): flows in divisions the role cannot see are not looked for",
        )),
        Err(e) => checks.push(Check::pass("flow search", format!("not checked: {e}"))),
    }
}

/// What `restore --apply` needs, probed without changing anything: each write goes to a flow id
/// that cannot exist, so a 403 says the permission is missing and a 404 (or 400) that it is granted.
async fn restore_checks(client: &GenesysClient, publish: bool, checks: &mut Vec<Check>) {
    const NO_FLOW: &str = "00000000-0000-4000-8000-000000000000";
    let mut probes = vec![
        (
            "restore: edit",
            "architect:flow:edit",
            "save and check in",
            client.endpoint(&["api", "v2", "flows", NO_FLOW, "versions"]),
            Some(bytes::Bytes::from_static(b"{}")),
        ),
        (
            "restore: unlock",
            "architect:flow:unlock",
            "give back a lock when a step fails, and --force-unlock",
            action_url(client, "unlock", NO_FLOW),
            None,
        ),
    ];
    if publish {
        probes.push((
            "restore: publish",
            "architect:flow:publish",
            "--publish",
            action_url(client, "publish", NO_FLOW),
            None,
        ));
    }
    for (step, permission, what, url, body) in probes {
        checks.push(match client.post_once(url, body).await {
            Err(ApiError::Forbidden { message, .. }) => Check::fail(
                step,
                format!("{permission} not granted ({message})"),
                format!("give the OAuth client's role {permission} (restore needs it to {what})"),
            ),
            Ok(_) | Err(ApiError::NotFound { .. } | ApiError::Rejected { .. }) => {
                Check::pass(step, format!("{permission} granted"))
            }
            Err(e) => Check::pass(step, format!("{permission} not checked: {e}")),
        });
    }
    checks.push(Check::pass(
        "restore: create",
        "architect:flow:add is not probed (a probe could create a flow): restore needs it to re-create deleted flows",
    ));
}

fn action_url(client: &GenesysClient, action: &str, flow: &str) -> url::Url {
    let mut url = client.endpoint(&["api", "v2", "flows", "actions", action]);
    url.query_pairs_mut().append_pair("flow", flow);
    url
}
