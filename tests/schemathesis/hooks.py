"""schemathesis hooks for run.sh: credentials for each operation's security.

`bearer`: the run itself ends sessions (sign-out, password change, DELETE
/v1/sessions/{id}) and cancels tokens (/v1/tokens/cancel), so one token
taken at the start would stop working early; the run's user signs in
again whenever a bearer route answers 401. The administration routes
(`/admin/v1`) take the access token of run.sh's admin client (client
credentials with `latchkey:admin`) instead, so they are exercised, not
only refused; all but disabling (PATCH) and deleting an account, which
keep the user's token (403): schemathesis reuses ids from earlier answers
(the account list), and disabling or deleting the run's own user would
end the run. `client_basic`: the confidential client run.sh registered. (schemathesis lets a hook or the config file
authenticate, not both, so both schemes are here.)
"""

import base64
import json
import os
import urllib.request

import schemathesis


def _schemes(case):
    return {name for requirement in case.operation.definition.raw.get("security") or [] for name in requirement}


def _as_admin(case):
    op = case.operation
    destructive = op.path == "/admin/v1/users/{id}" and op.method.upper() in ("PATCH", "DELETE")
    return op.path.startswith("/admin/") and not destructive


@schemathesis.auth(refresh_interval=60)
class Credentials:
    def get(self, case, context):
        request = urllib.request.Request(
            os.environ["LK_BASE_URL"] + "/v1/sign-in",
            data=os.environ["LK_CREDENTIALS"].encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["access_token"]

    def set(self, case, data, context):
        schemes = _schemes(case)
        if "bearer" in schemes and _as_admin(case):
            value = f'Bearer {os.environ["LK_ADMIN_TOKEN"]}'
        elif "bearer" in schemes:
            value = f"Bearer {data}"
        elif "client_basic" in schemes:
            pair = f'{os.environ["LK_CLIENT_ID"]}:{os.environ["LK_CLIENT_SECRET"]}'
            value = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            return
        case.headers = {**(case.headers or {}), "Authorization": value}
