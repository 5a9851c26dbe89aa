"""The official Genesys Cloud Python SDK (PyPI purecloudplatformclientv2) against the simulated org:
client-credentials login, every page of ArchitectApi.get_flows, every latest configuration, a
comma-joined type filter, published versions' configurations, organizations/me, divisionviews,
and an export job from registration to the unauthenticated download of its result.
Exits non-zero on any error."""
import io
import sys
import time
import urllib.request
import zipfile

import PureCloudPlatformClientV2 as g

url, client_id, secret, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = g.api_client.ApiClient(url).get_client_credentials_token(client_id, secret)
api = g.ArchitectApi(client)
seen = []
listed = {}
page = 1
while True:
    listing = api.get_flows(page_number=page, page_size=25)
    seen += [f.id for f in listing.entities]
    listed.update({f.id: f for f in listing.entities})
    if page >= listing.page_count:
        break
    page += 1
assert len(seen) == expected == listing.total, (len(seen), expected, listing.total)
assert len(set(seen)) == expected
for flow_id in seen:
    config = api.get_flow_latestconfiguration(flow_id)
    # A configuration has no top-level id (as in Genesys); it names its flow and carries a manifest.
    assert "id" not in config, config.get("id")
    assert (config["name"], config["type"]) == (listed[flow_id].name, listed[flow_id].type), config["name"]
    assert isinstance(config["manifest"], dict), flow_id
typed = api.get_flows(type=["bot", "workflow"], page_size=100)
assert {f.type for f in typed.entities} == {"BOT", "WORKFLOW"}, {f.type for f in typed.entities}

published = [f for f in api.get_flows(page_size=100).entities if f.published_version is not None]
drafts = 0
for f in published:
    config = api.get_flow_version_configuration(f.id, f.published_version.id)
    assert "id" not in config and config["type"] == f.type, (f.id, config.get("id"), config.get("type"))
    drafts += f.saved_version.id != f.published_version.id
assert drafts > 0, "the org has flows with unpublished drafts"

org = g.OrganizationApi(client).get_organizations_me()
assert org.id and org.third_party_org_name, org

views = api.get_flows_divisionviews(page_size=100)
assert views.total >= expected, views.total

job_flows = published[:3]
body = g.RegisterArchitectExportJob()
body.flows = []
for f in job_flows:
    details = g.ExportDetails()
    details.flow = g.ArchitectFlowReference()
    details.flow.id = f.id
    details.flow.version = f.published_version.id
    details.export_type = "Yaml"
    body.flows.append(details)
job = api.post_flows_export_jobs(body)
for _ in range(50):
    state = api.get_flows_export_job(job.id, expand=["messages"])
    if state.status in ("Success", "Failure"):
        break
    time.sleep(0.1)
assert state.status == "Success", (state.status, state.messages)
with urllib.request.urlopen(state.download_url) as resp:
    names = zipfile.ZipFile(io.BytesIO(resp.read())).namelist()
assert len(names) == len(job_flows), names


# The write side, as a restore drives it: create, lock, save a version, check in, publish.
new = g.Flow()
new.name = "SDK write-side check"
new.type = "INBOUNDCALL"
new.description = "created by the official SDK"
created = api.post_flows(new)
api.post_flows_actions_checkout(created.id)
version = api.post_flow_versions(created.id, {"name": new.name, "type": "INBOUNDCALL", "tasks": []})
assert version.id, version


def follow(operation):
    for _ in range(100):
        current = api.get_flow(created.id).current_operation
        if current is not None and current.id == operation.id and current.complete:
            return current
        time.sleep(0.05)
    raise AssertionError(f"operation {operation.id} did not complete")


assert follow(api.post_flows_actions_checkin(created.id)).action_status == "SUCCESS"
assert follow(api.post_flows_actions_publish(created.id)).action_status == "SUCCESS"
published = api.get_flow(created.id)
assert published.published_version.id == version.id, (published.published_version, version.id)
assert api.get_flow_version_configuration(created.id, version.id)["name"] == new.name

print(f"sdk ok: {len(seen)} flows listed and fetched; versions, org, divisionviews, export jobs and the write side work")
