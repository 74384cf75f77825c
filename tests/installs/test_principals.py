from __future__ import annotations

import pytest

from core.errors import InvalidInput
from installs.principals import check_guid, slack_principal, teams_principal

TENANT = "0A1B2C3D-0000-4000-8000-00000000E001"
USER = "5f0c1a2b-0000-4000-8000-0000000000a1"


def test_a_teams_principal_names_the_entra_tenant_and_the_user_in_lower_case() -> None:
    assert teams_principal(TENANT, USER) == f"teams:{TENANT.lower()}:{USER}"
    assert teams_principal(TENANT.lower(), USER.upper()) == teams_principal(TENANT, USER)
    assert slack_principal("T1", "U1") == "slack:T1:U1"


@pytest.mark.parametrize("bad", [
    "", "29:1abc", "{" + USER + "}", USER + "\n", USER.replace("-", ""), USER[:-1] + "g",
    USER + ":x", " " + USER,
])
def test_anything_but_a_guid_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="GUID"):
        teams_principal(TENANT, bad)
    with pytest.raises(InvalidInput, match="GUID"):
        teams_principal(bad, USER)
    with pytest.raises(InvalidInput):
        check_guid("id", bad)
