"""The official Genesys Cloud Python SDK (PyPI purecloudplatformclientv2) against the simulated org:
client-credentials login, every page of ArchitectApi.get_flows, every latest configuration, a
comma-joined type filter, published versions' configurations, organizations/me, divisionviews,
and an export job from registration to the unauthenticated download of its result; every
Architect object kind (prompts with their resources, data tables with schema and full rows,
schedules, schedule groups, emergency groups, IVRs, outcomes, milestones), one prompt's audio
downloaded from its presigned mediaUri without auth, and the write side of the objects: a schedule
created, and a prompt resource's audio uploaded through the presigned upload until transcoded.
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



def every_page(call, **kwargs):
    """Every entity of a listing, page by page, as the SDK's models."""
    out, page = [], 1
    while True:
        listing = call(page_number=page, page_size=25, **kwargs)
        out += listing.entities or []
        if page >= (listing.page_count or 0):
            return out
        page += 1


# The Architect objects flows stand on, read with the SDK's own models.
prompts = every_page(api.get_architect_prompts, include_media_uris=True, include_resources=True)
resources = [r for p in prompts for r in (p.resources or [])]
assert prompts and all(r.upload_status == "transcoded" for r in resources), [r.upload_status for r in resources]
audio = next(r for r in resources if r.media_uri)
with urllib.request.urlopen(audio.media_uri) as resp:  # presigned: no Authorization header
    wav = resp.read()
assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE", wav[:12]
fresh = api.get_architect_prompt_resource(audio.prompt_id, audio.language)
assert fresh.media_uri and fresh.upload_status == "transcoded", fresh

tables = every_page(api.get_flows_datatables, expand="schema")
assert tables and all(t.schema.properties["key"] for t in tables), tables[0]
rows = api.get_flows_datatable_rows(tables[0].id, showbrief=False, page_size=100)
assert rows.total > 0 and len(rows.entities[0]) > 1, rows.entities[:1]
schedules = every_page(api.get_architect_schedules)
assert schedules and all(s.rrule and s.start for s in schedules), schedules[0]
groups = every_page(api.get_architect_schedulegroups)
assert {s.id for g in groups for s in g.open_schedules} <= {s.id for s in schedules}
ivrs = every_page(api.get_architect_ivrs)
assert ivrs and all(i.dnis and i.open_hours_flow.id in listed for i in ivrs), ivrs[0]
emergency = every_page(api.get_architect_emergencygroups)
assert emergency and emergency[0].emergency_call_flows[0].ivrs[0].id in {i.id for i in ivrs}
outcomes = every_page(api.get_flows_outcomes)
milestones = every_page(api.get_flows_milestones)
assert outcomes and milestones

# The objects' write side: a schedule, and a prompt resource with its audio uploaded.
schedule = g.Schedule()
schedule.name = "SDK Schedule"
schedule.start = "2026-03-02T08:00:00.000"
schedule.end = "2026-03-02T17:00:00.000"
schedule.rrule = "FREQ=WEEKLY;BYDAY=MO"
made = api.post_architect_schedules(schedule)
assert made.id and made.version == 1, made
prompt = g.Prompt()
prompt.name = "SDK_Prompt"
prompt.description = "created by the official SDK"
new_prompt = api.post_architect_prompts(prompt)
asset = g.PromptAssetCreate()
asset.language = "en-us"
asset.tts_string = "Hello from the SDK"
asset.text = "Hello from the SDK"
created_asset = api.post_architect_prompt_resources(new_prompt.id, asset)
assert created_asset.upload_status == "created", created_asset
upload = api.post_architect_prompt_resource_uploads(new_prompt.id, "en-us")
put = urllib.request.Request(upload.url, data=wav, method="PUT", headers=upload.headers)
with urllib.request.urlopen(put) as resp:  # presigned: exactly the returned headers, no auth
    assert resp.status == 200, resp.status
for _ in range(20):
    status = api.get_architect_prompt_resource(new_prompt.id, "en-us").upload_status
    if status == "transcoded":
        break
assert status == "transcoded", status

print(f"sdk ok: {len(seen)} flows listed and fetched; versions, org, divisionviews, export jobs and the write side work; {len(prompts)} prompts, {len(tables)} tables, {len(schedules)} schedules, {len(ivrs)} ivrs read; a schedule and a prompt upload written")
