#!/usr/bin/env python3
"""The sample app's call to the product, in Python with the standard
library only: no shared secret, no JWT, no qsh. Tenantry's egress endpoint
signs the call (or obtains a user token) and forwards it.

    EGRESS_URL=http://tenantry-egress.tenantry.svc:8082 APP=default/issue-insights \
    CLIENT_KEY=... TOKEN_FILE=/var/run/secrets/tenantry/token python3 egress.py [accountId]
"""
import os, sys, urllib.error, urllib.request

token = open(os.environ.get("TOKEN_FILE", "/var/run/secrets/tenantry/token")).read().strip()
url = f"{os.environ['EGRESS_URL']}/{os.environ['APP']}/tenants/{os.environ['CLIENT_KEY']}/rest/api/3/myself"
req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
if len(sys.argv) > 1:
    req.add_header("X-Tenantry-Account-Id", sys.argv[1])  # act as this user
try:
    with urllib.request.urlopen(req, timeout=30) as resp:
        print(resp.status, resp.read().decode())
except urllib.error.HTTPError as e:  # the product's answer, or the endpoint's refusal
    print(e.code, e.headers.get("X-Tenantry-Egress-Reason") or e.read().decode())
