"""The official Genesys Cloud Python SDK (PyPI purecloudplatformclientv2) against the simulated org:
client-credentials login, every page of ArchitectApi.get_flows, every latest configuration, and a
comma-joined type filter. Exits non-zero on any error."""
import sys

import PureCloudPlatformClientV2 as g

url, client_id, secret, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = g.api_client.ApiClient(url).get_client_credentials_token(client_id, secret)
api = g.ArchitectApi(client)
seen = []
page = 1
while True:
    listing = api.get_flows(page_number=page, page_size=25)
    seen += [f.id for f in listing.entities]
    if page >= listing.page_count:
        break
    page += 1
assert len(seen) == expected == listing.total, (len(seen), expected, listing.total)
assert len(set(seen)) == expected
for flow_id in seen:
    config = api.get_flow_latestconfiguration(flow_id)
    assert config["id"] == flow_id, config.get("id")
typed = api.get_flows(type=["bot", "workflow"], page_size=100)
assert {f.type for f in typed.entities} == {"BOT", "WORKFLOW"}, {f.type for f in typed.entities}
print(f"sdk ok: {len(seen)} flows listed and fetched")
