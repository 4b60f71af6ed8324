"""The cross-tenant access matrix (issue 3): for every query and mutation, what each role
reaches, over real HTTP with real loopback OpenID Connect providers.

Roles: an operator (an operator client's token, and "operator-sso": the coalition provider's
operator role); the skyway and brewbar partner apps (client-credentials tokens with every
partner scope); a skyway app whose token carries only ``points:earn``; member X and member Y
(bearer tokens from their brand's provider); "forged-operator", a member whose token from a
partner's provider claims the operator role; and a caller with no credentials.

The coalition (built once per database, by an operator):

- X is enrolled at skyway (SKY-1) and signs in there. X earned miles at skyway and stars at
  brewbar *by member id*: X holds a brewbar wallet but no brewbar enrolment or identity, so
  the brewbar app may not see X. One brewbar earn and one skyway earn were reversed; 400
  miles were converted into stars.
- Y is enrolled at brewbar (BB-Y) only, signs in there, and earned stars.
- W has X's history exactly, and then linked a brewbar sign-in carrying the card BB-W: W is
  "X after enrolling at brewbar", which the brewbar app sees (its pool only).

Test ids read ``role:operation(target)->expected``. Refused cases must post nothing: each
compares a snapshot of the ledger (X, Y and W, and every pool's figures) before and after.
Cases that succeed and change something act on a fresh member of their own, so the shared
coalition stays as built.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from gateway.auth.providers import COALITION
from tests.conftest import Clock, Gateway, postgres_url, start_gateway
from tests.operations import CONVERT, EARN, ENROL, QUOTE, REDEEM, REVERSE, codes, payload
from tests.sso import CLOCK, Brands

pytestmark = pytest.mark.asyncio(loop_scope="module")

POOLS = ("skyway", "brewbar")
ERRORS = "userErrors { code field message }"

TRANSFER_VIEW = """
  id kind points partner { slug } toPartner { slug } member { id }
  reverses { id } reversedBy { id }
  legs { partner { slug } account amount balanceAfter }
"""
MEMBER_VIEW = f"""
fragment Seen on Member {{
  id
  enrolments {{ partner {{ slug }} partnerCustomerId }}
  identities {{ id provider subject }}
  wallets {{ partner {{ slug }} balance }}
  skyway: wallet(partner: "skyway") {{ balance }}
  brewbar: wallet(partner: "brewbar") {{ balance }}
  totalValue {{ amount currency }}
  transfers(first: 100) {{ edges {{ node {{ {TRANSFER_VIEW} }} }} }}
}}"""
BY_ID = "query($id: ID!) { found: member(id: $id) { ...Seen } }" + MEMBER_VIEW
BY_NODE = "query($id: ID!) { found: node(id: $id) { ... on Member { ...Seen } } }" + MEMBER_VIEW
BY_ENROLMENT = (
    "query($partner: String!, $customer: String!) {"
    " found: memberByEnrolment(partner: $partner, partnerCustomerId: $customer) { ...Seen } }"
    + MEMBER_VIEW
)
TRANSFER_NODE = (
    f"query($id: ID!) {{ found: node(id: $id) {{ ... on Transfer {{ {TRANSFER_VIEW} }} }} }}"
)
ME = "{ me { id } }"
FIGURES = "figures { pointsIssued pointsRedeemed pointsOutstanding conversionFees liquidity }"
PARTNERS = f"""
query($skyway: ID!, $brewbar: ID!) {{
  partners {{ slug {FIGURES} }}
  skyway: partner(slug: "skyway") {{ slug {FIGURES} }}
  brewbar: partner(slug: "brewbar") {{ slug {FIGURES} }}
  skywayNode: node(id: $skyway) {{ ... on Partner {{ slug {FIGURES} }} }}
  brewbarNode: node(id: $brewbar) {{ ... on Partner {{ slug {FIGURES} }} }}
}}"""
START_LINK = f"mutation {{ startAccountLink {{ nonce expiresAt {ERRORS} }} }}"
COMPLETE_LINK = f"""
mutation($input: CompleteAccountLinkInput!) {{
  completeAccountLink(input: $input) {{ member {{ id }} mergedMemberIds alreadyLinked {ERRORS} }}
}}"""
UNLINK = f"""
mutation($input: UnlinkIdentityInput!) {{
  unlinkIdentity(input: $input) {{ member {{ id identities {{ provider subject }} }} {ERRORS} }}
}}"""
MEMBER_DATA = "id wallets { partner { slug } balance } transfers { edges { node { id } } }"
# Earning with the nested edges a caller could follow from the payload.
EARN_DEEP = f"""
mutation($input: EarnPointsInput!) {{
  earnPoints(input: $input) {{
    transfer {{
      id legs {{ partner {{ slug }} }}
      member {{ {MEMBER_DATA} }}
    }}
    wallet {{ balance }}
    {ERRORS}
  }}
}}"""
ENROL_DEEP = f"""
mutation($input: EnrolMemberInput!) {{
  enrolMember(input: $input) {{
    member {{ {MEMBER_DATA} }}
    created {ERRORS}
  }}
}}"""
SNAPSHOT = """
query($x: ID!, $y: ID!, $w: ID!) {
  x: member(id: $x) { ...Ledger }
  y: member(id: $y) { ...Ledger }
  w: member(id: $w) { ...Ledger }
  partners { slug figures { pointsIssued pointsRedeemed pointsOutstanding conversionFees
    liquidity membersHoldingPoints } }
}
fragment Ledger on Member {
  wallets { partner { slug } balance }
  enrolments { partner { slug } partnerCustomerId }
  identities { provider subject }
  transfers(first: 100) { edges { node { id reversedBy { id } } } }
}"""

# Each member's transfers, newest first, as the operator (or the member) sees them, and as
# each partner's app sees them: those that touched its pool.
HISTORY = ["C", "R4", "T4", "R3", "T3", "T2", "T1"]
HISTORY_AT = {"skyway": ["C", "R4", "T4", "T1"], "brewbar": ["C", "R3", "T3", "T2"]}


@dataclass
class Fresh:
    """A member made for one case: enrolled at skyway, 1000 miles, 50 stars, signed in."""

    id: str
    customer: str
    subject: str
    token: str
    sky_earn: str
    bb_earn: str


@dataclass
class World:
    gateway: Gateway
    brands: Brands
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    truth: dict[str, dict[str, Any]] = field(default_factory=dict)
    initial: dict[str, Any] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    async def call(
        self, role: str, query: str, variables: dict[str, Any] | None = None, **expect: Any
    ) -> dict[str, Any]:
        return await self.gateway.gql(query, variables, token=self.tokens[role], **expect)

    async def mutate(
        self, role: str, document: str, input: dict[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        """One mutation as ``role`` (or with ``token``); its payload."""
        body = await self.gateway.gql(document, {"input": input}, token=token or self.tokens[role])
        return payload(body)

    async def ok(
        self, role: str, document: str, input: dict[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        result = await self.mutate(role, document, input, token)
        assert result["userErrors"] == [], result
        return result

    async def enrol(self, partner: str, customer: str) -> str:
        result = await self.ok(
            "operator", ENROL, {"partner": partner, "partnerCustomerId": customer}
        )
        member_id: str = result["member"]["id"]
        return member_id

    async def earn(self, partner: str, member: dict[str, str], points: int) -> str:
        result = await self.ok(
            "operator",
            EARN,
            {"partner": partner, "member": member, "points": points, "idempotencyKey": self.key()},
        )
        transfer_id: str = result["transfer"]["id"]
        return transfer_id

    async def reverse(self, transfer_id: str) -> str:
        result = await self.ok(
            "operator", REVERSE, {"transferId": transfer_id, "idempotencyKey": self.key()}
        )
        reversal_id: str = result["reversal"]["id"]
        return reversal_id

    async def convert(self, member_id: str, source: str, target: str, points: int) -> str:
        result = await self.ok(
            "operator",
            CONVERT,
            {
                "memberId": member_id,
                "fromPartner": source,
                "toPartner": target,
                "points": points,
                "idempotencyKey": self.key(),
            },
        )
        transfer_id: str = result["transfer"]["id"]
        return transfer_id

    def key(self) -> str:
        return f"access-{next(self.counter)}"

    async def signed_in(self, token: str) -> str:
        """Use a member's provider token once (its first sign-in); the member's id."""
        me = (await self.gateway.gql(ME, token=token))["data"]["me"]
        assert me is not None
        member_id: str = me["id"]
        return member_id

    async def link(self, token: str, brand: str, subject: str, **claims: Any) -> dict[str, Any]:
        """The native link flow: start as the member, sign in at ``brand``, complete."""
        start = payload(await self.gateway.gql(START_LINK, token=token))
        assert start["userErrors"] == [] and start["nonce"], start
        id_token = self.brands.token(brand, subject, nonce=start["nonce"], **claims)
        return await self.mutate("", COMPLETE_LINK, {"idToken": id_token}, token=token)

    async def fresh(self) -> Fresh:
        n = next(self.counter)
        customer = f"SKY-F{n}"
        member_id = await self.enrol("skyway", customer)
        sky = await self.earn("skyway", {"partnerCustomerId": customer}, 1000)
        bb = await self.earn("brewbar", {"id": member_id}, 50)
        subject = f"f{n}-sub"
        token = self.brands.token("skyway", subject, skyway_member=customer)
        assert await self.signed_in(token) == member_id
        return Fresh(member_id, customer, subject, token, sky, bb)

    async def snapshot(self) -> dict[str, Any]:
        ids = {"x": self.ids["X"], "y": self.ids["Y"], "w": self.ids["W"]}
        data: dict[str, Any] = (await self.call("operator", SNAPSHOT, ids))["data"]
        return data

    async def member_view(self, member: str) -> dict[str, Any]:
        body = await self.call("operator", BY_ID, {"id": member})
        found: dict[str, Any] = body["data"]["found"]
        return found


async def build(gateway: Gateway, brands: Brands) -> World:
    world = World(gateway, brands)
    tokens, ids = world.tokens, world.ids
    tokens["operator"] = await gateway.operator_token()
    tokens["skyway-app"] = await gateway.partner_token("skyway")
    tokens["brewbar-app"] = await gateway.partner_token("brewbar")
    tokens["skyway-earn-only"] = await gateway.partner_token("skyway", "points:earn")

    ids["X"] = await world.enrol("skyway", "SKY-1")
    ids["Y"] = await world.enrol("brewbar", "BB-Y")
    ids["W"] = await world.enrol("skyway", "SKY-W")
    for name, customer in (("X", "SKY-1"), ("W", "SKY-W")):
        member = {"id": ids[name]}
        ids[f"{name}.T1"] = await world.earn("skyway", {"partnerCustomerId": customer}, 1000)
        ids[f"{name}.T2"] = await world.earn("brewbar", member, 60)
        ids[f"{name}.T3"] = await world.earn("brewbar", member, 10)
        ids[f"{name}.R3"] = await world.reverse(ids[f"{name}.T3"])
        ids[f"{name}.T4"] = await world.earn("skyway", member, 100)
        ids[f"{name}.R4"] = await world.reverse(ids[f"{name}.T4"])
        ids[f"{name}.C"] = await world.convert(ids[name], "skyway", "brewbar", 400)
    ids["Y.T1"] = await world.earn("brewbar", {"partnerCustomerId": "BB-Y"}, 80)

    # Sign-in identities: the first use of each token attaches it to the enrolled member.
    tokens["member-X"] = brands.token("skyway", "x-sub", skyway_member="SKY-1")
    tokens["member-Y"] = brands.token("brewbar", "y-sub", brewbar_card="BB-Y")
    w_token = brands.token("skyway", "w-sub", skyway_member="SKY-W")
    assert await world.signed_in(tokens["member-X"]) == ids["X"]
    assert await world.signed_in(tokens["member-Y"]) == ids["Y"]
    assert await world.signed_in(w_token) == ids["W"]
    # An operator signs in at the coalition's provider; a partner's provider cannot say so.
    tokens["operator-sso"] = brands.token(COALITION, "olivia")
    tokens["forged-operator"] = brands.token("brewbar", "eve", roles=["coalition-operator"])
    assert (await world.call("operator-sso", ME))["data"]["me"] is None
    ids["forged"] = await world.signed_in(tokens["forged-operator"])
    linked = await world.link(w_token, "brewbar", "w-bb", brewbar_card="BB-W")
    assert linked["userErrors"] == [] and linked["member"] == {"id": ids["W"]}, linked

    for name in ("X", "Y", "W"):
        world.truth[name] = await world.member_view(ids[name])
    world.initial = await world.snapshot()
    return world


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def access_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Outside the event loop: checking PostgreSQL runs a loop of its own."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('access') / 'ledger.db'}"
    return postgres_url()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(access_database: str, brands: Brands) -> AsyncIterator[World]:
    CLOCK.now = Clock().now
    async for gateway in start_gateway(
        access_database, CLOCK, config_dir=brands.config_dir, oidc_credentials=brands.credentials
    ):
        yield await build(gateway, brands)


# What each caller sees ------------------------------------------------------------------


def pools(node: dict[str, Any]) -> set[str]:
    return {leg["partner"]["slug"] for leg in node["legs"]}


def at_pool(node: dict[str, Any], pool: str | None) -> dict[str, Any]:
    """A transfer as a caller sees it: every leg, or a partner app's own pool's."""
    if pool is None:
        return node
    return {**node, "legs": [leg for leg in node["legs"] if leg["partner"]["slug"] == pool]}


def seen_by(full: dict[str, Any], pool: str | None) -> dict[str, Any]:
    """A member as a caller sees it: all of it, or what a partner app of ``pool`` may see."""
    if pool is None:
        return full
    return {
        **full,
        "enrolments": [e for e in full["enrolments"] if e["partner"]["slug"] == pool],
        "identities": [],
        "wallets": [w for w in full["wallets"] if w["partner"]["slug"] == pool],
        "skyway": full["skyway"] if pool == "skyway" else None,
        "brewbar": full["brewbar"] if pool == "brewbar" else None,
        "totalValue": None,
        "transfers": {
            "edges": [
                {"node": at_pool(edge["node"], pool)}
                for edge in full["transfers"]["edges"]
                if pool in pools(edge["node"])
            ]
        },
    }


def transfer_ids(member: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in member["transfers"]["edges"]]


def truth_of(world: World, label: str) -> dict[str, Any]:
    owner = world.truth[label.split(".")[0]]
    (node,) = (
        e["node"] for e in owner["transfers"]["edges"] if e["node"]["id"] == world.ids[label]
    )
    return node


def row_ids(rows: list[Any]) -> list[str]:
    """Test ids that show the matrix: role:what->expected."""
    return [f"{row[0]}:{row[1]}->{shown(row[-1])}" for row in rows]


# The operator's view is the ground truth every partner view is cut from ----------------


async def test_operator_sees_all_of_x_y_and_w(world: World) -> None:
    x, y, w = world.truth["X"], world.truth["Y"], world.truth["W"]
    assert x["enrolments"] == [{"partner": {"slug": "skyway"}, "partnerCustomerId": "SKY-1"}]
    assert [(i["provider"], i["subject"]) for i in x["identities"]] == [("skyway", "x-sub")]
    # 1000 + 100 - 100 - 400 miles; 60 + 10 - 10 + floor((400 - 8) * 0.25) stars.
    wallets = [
        {"partner": {"slug": "brewbar"}, "balance": 158},
        {"partner": {"slug": "freshmart"}, "balance": 0},
        {"partner": {"slug": "skyway"}, "balance": 600},
    ]
    assert x["wallets"] == wallets and w["wallets"] == wallets
    assert (x["skyway"], x["brewbar"]) == ({"balance": 600}, {"balance": 158})
    assert x["totalValue"] == {"amount": "13.52", "currency": "EUR"}  # 600 * 0.012 + 158 * 0.04
    assert transfer_ids(x) == [world.ids[f"X.{label}"] for label in HISTORY]
    assert transfer_ids(w) == [world.ids[f"W.{label}"] for label in HISTORY]
    assert pools(truth_of(world, "X.C")) == {"skyway", "brewbar"}
    assert truth_of(world, "X.R3")["reverses"] == {"id": world.ids["X.T3"]}
    assert truth_of(world, "X.T3")["reversedBy"] == {"id": world.ids["X.R3"]}
    assert all(e["node"]["member"] == {"id": world.ids["X"]} for e in x["transfers"]["edges"])

    # Linking W's brewbar sign-in, whose token carries the card, enrolled W at brewbar.
    assert sorted((e["partner"]["slug"], e["partnerCustomerId"]) for e in w["enrolments"]) == [
        ("brewbar", "BB-W"),
        ("skyway", "SKY-W"),
    ]
    assert sorted((i["provider"], i["subject"]) for i in w["identities"]) == [
        ("brewbar", "w-bb"),
        ("skyway", "w-sub"),
    ]
    assert y["enrolments"] == [{"partner": {"slug": "brewbar"}, "partnerCustomerId": "BB-Y"}]
    assert [(i["provider"], i["subject"]) for i in y["identities"]] == [("brewbar", "y-sub")]
    assert y["brewbar"] == {"balance": 80} and y["skyway"] == {"balance": 0}
    assert transfer_ids(y) == [world.ids["Y.T1"]]


# member(id), node(id), memberByEnrolment -------------------------------------------------

# (role, member, view): None is null; "all" is everything; a slug is that app's cut.
MEMBER_VIEWS = [
    ("operator", "X", "all"),
    ("operator", "Y", "all"),
    ("operator", "W", "all"),
    ("skyway-app", "X", "skyway"),
    ("skyway-app", "Y", None),
    ("skyway-app", "W", "skyway"),
    ("brewbar-app", "X", None),  # a brewbar wallet, but no brewbar identity or enrolment
    ("brewbar-app", "Y", "brewbar"),
    ("brewbar-app", "W", "brewbar"),  # X's twin after enrolling at brewbar
    ("skyway-earn-only", "X", None),  # no members:read
    ("skyway-earn-only", "W", None),
    ("member-X", "X", "all"),
    ("member-X", "Y", None),
    ("member-X", "W", None),
    ("member-Y", "Y", "all"),
    ("member-Y", "X", None),
    ("operator-sso", "X", "all"),  # the coalition provider's operator role
    ("operator-sso", "Y", "all"),
    ("forged-operator", "X", None),  # an operator role claimed at a partner's provider
    ("forged-operator", "Y", None),
]
MEMBER_READS = [
    (role, way, member, view)
    for role, member, view in MEMBER_VIEWS
    for way in ("member(id)", "node(id)")
]


def shown(view: Any) -> str:
    if view is None:
        return "null"
    if isinstance(view, tuple):
        return "+".join(view) or "none"
    return view if view == "all" or view not in POOLS else f"{view}-pool-only"


def expected_history(member: str, view: str) -> list[str]:
    if member == "Y":
        return ["Y.T1"]
    return [f"{member}.{label}" for label in (HISTORY if view == "all" else HISTORY_AT[view])]


async def check_member(world: World, found: Any, member: str, view: str | None) -> None:
    if view is None:
        assert found is None
        return
    expected = seen_by(world.truth[member], None if view == "all" else view)
    assert found == expected
    assert transfer_ids(found) == [world.ids[label] for label in expected_history(member, view)]


@pytest.mark.parametrize(
    ("role", "way", "member", "view"),
    MEMBER_READS,
    ids=[f"{r}:{way.replace('id', m)}->{shown(v)}" for r, way, m, v in MEMBER_READS],
)
async def test_member_by_id(world: World, role: str, way: str, member: str, view: str | None):
    document = BY_ID if way == "member(id)" else BY_NODE
    found = (await world.call(role, document, {"id": world.ids[member]}))["data"]["found"]
    await check_member(world, found, member, view)


# (role, "member@partner:customer", view): a partner's app looks up its own customers only.
ENROLMENT_READS = [
    ("operator", "X@skyway:SKY-1", "all"),
    ("operator", "Y@brewbar:BB-Y", "all"),
    ("operator", "W@brewbar:BB-W", "all"),
    ("skyway-app", "X@skyway:SKY-1", "skyway"),
    ("skyway-app", "Y@brewbar:BB-Y", None),
    ("skyway-app", "W@brewbar:BB-W", None),  # sees W, but not by brewbar's customer id
    ("skyway-app", "W@skyway:SKY-W", "skyway"),
    ("brewbar-app", "X@skyway:SKY-1", None),
    ("brewbar-app", "Y@brewbar:BB-Y", "brewbar"),
    ("brewbar-app", "W@brewbar:BB-W", "brewbar"),
    ("brewbar-app", "W@skyway:SKY-W", None),
    ("skyway-earn-only", "X@skyway:SKY-1", None),
    ("member-X", "X@skyway:SKY-1", "all"),
    ("member-X", "Y@brewbar:BB-Y", None),
    ("member-X", "W@skyway:SKY-W", None),
    ("member-Y", "Y@brewbar:BB-Y", "all"),
    ("member-Y", "X@skyway:SKY-1", None),
    ("operator-sso", "Y@brewbar:BB-Y", "all"),
    ("forged-operator", "Y@brewbar:BB-Y", None),
]


def enrolment_id(role: str, enrolment: str, view: str | None) -> str:
    pair = enrolment.partition("@")[2].replace(":", ",")
    return f"{role}:memberByEnrolment({pair})->{shown(view)}"


@pytest.mark.parametrize(
    ("role", "enrolment", "view"),
    ENROLMENT_READS,
    ids=[enrolment_id(*row) for row in ENROLMENT_READS],
)
async def test_member_by_enrolment(world: World, role: str, enrolment: str, view: str | None):
    member, _, pair = enrolment.partition("@")
    partner, _, customer = pair.partition(":")
    variables = {"partner": partner, "customer": customer}
    found = (await world.call(role, BY_ENROLMENT, variables))["data"]["found"]
    await check_member(world, found, member, view)


# A partner's app always gets its own pool's transfers, whatever `partner` it asks for.
TRANSFERS_FILTERED = [
    ("operator", "X", "brewbar", HISTORY_AT["brewbar"]),
    ("skyway-app", "X", "brewbar", HISTORY_AT["skyway"]),
    ("brewbar-app", "W", "skyway", HISTORY_AT["brewbar"]),
    ("member-X", "X", "skyway", HISTORY_AT["skyway"]),
]


@pytest.mark.parametrize(
    ("role", "member", "partner", "labels"),
    TRANSFERS_FILTERED,
    ids=[
        f"{r}:member({m}).transfers(partner:{p})->{'+'.join(ls)}"
        for r, m, p, ls in TRANSFERS_FILTERED
    ],
)
async def test_transfers_partner_argument(
    world: World, role: str, member: str, partner: str, labels: list[str]
):
    document = """query($id: ID!, $partner: String) { member(id: $id) {
        transfers(first: 100, partner: $partner) { edges { node { id legs { partner { slug } } } } }
    } }"""
    variables = {"id": world.ids[member], "partner": partner}
    found = (await world.call(role, document, variables))["data"]["member"]
    assert transfer_ids(found) == [world.ids[f"{member}.{label}"] for label in labels]
    own = {"skyway-app": "skyway", "brewbar-app": "brewbar"}.get(role)
    if own:
        assert all(pools(e["node"]) == {own} for e in found["transfers"]["edges"])


# node(id) of a transfer, and its nested edges (member, reverses, reversedBy, legs) --------

TRANSFER_READS = [
    ("operator", "X.T1", "all"),
    ("operator", "X.T2", "all"),
    ("operator", "X.R3", "all"),
    ("operator", "X.C", "all"),
    ("operator", "Y.T1", "all"),
    ("skyway-app", "X.T1", "skyway"),
    ("skyway-app", "X.T4", "skyway"),  # reversedBy: its own reversal
    ("skyway-app", "X.R4", "skyway"),  # reverses: its own earn
    ("skyway-app", "X.C", "skyway"),  # the conversion, without brewbar's legs
    ("skyway-app", "X.T2", None),  # X's brewbar-only earn
    ("skyway-app", "X.T3", None),
    ("skyway-app", "X.R3", None),
    ("skyway-app", "Y.T1", None),
    ("brewbar-app", "X.T2", None),  # in brewbar's pool, but X is not brewbar's to see
    ("brewbar-app", "X.C", None),
    ("brewbar-app", "Y.T1", "brewbar"),
    ("brewbar-app", "W.T2", "brewbar"),
    ("brewbar-app", "W.R3", "brewbar"),
    ("brewbar-app", "W.C", "brewbar"),  # the conversion, without skyway's legs
    ("brewbar-app", "W.T1", None),  # W's skyway-only earn
    ("brewbar-app", "W.R4", None),
    ("skyway-earn-only", "X.T1", None),
    ("skyway-earn-only", "X.C", None),
    ("member-X", "X.T1", "all"),
    ("member-X", "X.R3", "all"),
    ("member-X", "X.C", "all"),
    ("member-X", "Y.T1", None),
    ("member-X", "W.T1", None),
    ("member-Y", "Y.T1", "all"),
    ("member-Y", "X.T2", None),
    ("member-Y", "X.C", None),
]


@pytest.mark.parametrize(
    ("role", "transfer", "view"),
    TRANSFER_READS,
    ids=[f"{r}:node({t})->{shown(v)}" for r, t, v in TRANSFER_READS],
)
async def test_transfer_by_node(world: World, role: str, transfer: str, view: str | None):
    found = (await world.call(role, TRANSFER_NODE, {"id": world.ids[transfer]}))["data"]["found"]
    if view is None:
        assert found is None
        return
    expected = at_pool(truth_of(world, transfer), None if view == "all" else view)
    assert found == expected
    assert found["legs"], "a visible transfer shows the caller's legs"
    assert found["member"] == {"id": world.ids[transfer.split(".")[0]]}


async def test_nested_reversal_edges_stay_in_the_callers_pool(world: World) -> None:
    """A reversal and its original are in the same pools: a partner's app sees both or
    neither, so neither edge leads to a transfer the caller cannot reach by node(id)."""
    skyway = (await world.call("skyway-app", BY_ID, {"id": world.ids["X"]}))["data"]["found"]
    nodes = {e["node"]["id"]: e["node"] for e in skyway["transfers"]["edges"]}
    assert nodes[world.ids["X.R4"]]["reverses"] == {"id": world.ids["X.T4"]}
    assert nodes[world.ids["X.T4"]]["reversedBy"] == {"id": world.ids["X.R4"]}
    for node in nodes.values():
        for edge in ("reverses", "reversedBy"):
            if node[edge] is not None:
                assert node[edge]["id"] in nodes
        assert pools(node) == {"skyway"}
        assert node["member"] == {"id": world.ids["X"]}
    # The brewbar reversal pair of X is nowhere in skyway's view.
    assert world.ids["X.R3"] not in nodes and world.ids["X.T3"] not in nodes


# me, partners and figures -----------------------------------------------------------------

ME_READS = [
    ("operator", "me", None),
    ("skyway-app", "me", None),
    ("brewbar-app", "me", None),
    ("skyway-earn-only", "me", None),
    ("member-X", "me", "X"),
    ("member-Y", "me", "Y"),
    ("operator-sso", "me", None),
    ("forged-operator", "me", "forged"),  # a member, newly signed in at brewbar
]


@pytest.mark.parametrize(("role", "field", "member"), ME_READS, ids=row_ids(ME_READS))
async def test_me(world: World, role: str, field: str, member: str | None):
    me = (await world.call(role, ME))["data"]["me"]
    assert me == (None if member is None else {"id": world.ids[member]})


# Which pools' figures each role sees; the others are null.
FIGURE_READS = [
    ("operator", "figures", ("brewbar", "freshmart", "harbour", "skyway")),
    ("skyway-app", "figures", ("skyway",)),
    ("brewbar-app", "figures", ("brewbar",)),
    ("skyway-earn-only", "figures", ("skyway",)),
    ("member-X", "figures", ()),
    ("member-Y", "figures", ()),
    ("operator-sso", "figures", ("brewbar", "freshmart", "harbour", "skyway")),
    ("forged-operator", "figures", ()),
]


@pytest.mark.parametrize(("role", "field", "visible"), FIGURE_READS, ids=row_ids(FIGURE_READS))
async def test_partner_figures(world: World, role: str, field: str, visible: tuple[str, ...]):
    ids = {slug: base64.b64encode(f"Partner:{slug}".encode()).decode() for slug in POOLS}
    truth = (await world.call("operator", PARTNERS, ids))["data"]
    data = (await world.call(role, PARTNERS, ids))["data"]
    figures = {p["slug"]: p["figures"] for p in truth["partners"]}
    assert all(figures.values())
    expected = {slug: (f if slug in visible else None) for slug, f in figures.items()}
    assert {p["slug"]: p["figures"] for p in data["partners"]} == expected
    for slug in ("skyway", "brewbar"):
        assert data[slug] == {"slug": slug, "figures": expected[slug]}
        assert data[f"{slug}Node"] == {"slug": slug, "figures": expected[slug]}


# quoteConversion ----------------------------------------------------------------------------

# (role, member, expected): a quote (source balance, fee, received) or the user error.
QUOTES = [
    ("operator", "X", (600, 4, 49)),
    ("member-X", "X", (600, 4, 49)),
    ("member-Y", "Y", (80, 1, 57)),
    ("member-X", "Y", "ACCESS_DENIED"),
    ("member-Y", "X", "ACCESS_DENIED"),
    ("skyway-app", "X", "ACCESS_DENIED"),
    ("brewbar-app", "Y", "ACCESS_DENIED"),
    ("brewbar-app", "W", "ACCESS_DENIED"),
    ("skyway-earn-only", "X", "ACCESS_DENIED"),
    ("operator-sso", "Y", (80, 1, 57)),
    ("forged-operator", "X", "ACCESS_DENIED"),
]
QUOTE_INPUT = {
    "X": ("skyway", "brewbar", 200),
    "W": ("skyway", "brewbar", 200),
    "Y": ("brewbar", "skyway", 20),
}


@pytest.mark.parametrize(
    ("role", "member", "expected"),
    QUOTES,
    ids=[f"{r}:quoteConversion({m})->{e if isinstance(e, str) else 'quote'}" for r, m, e in QUOTES],
)
async def test_quote_conversion(world: World, role: str, member: str, expected: Any):
    source, target, points = QUOTE_INPUT[member]
    variables = {
        "input": {
            "memberId": world.ids[member],
            "fromPartner": source,
            "toPartner": target,
            "points": points,
        }
    }
    result = payload(await world.call(role, QUOTE, variables))
    if isinstance(expected, str):
        assert codes(result) == [expected] and result["quote"] is None
        return
    assert result["userErrors"] == []
    quote = result["quote"]
    assert (quote["sourceBalance"], quote["fee"], quote["receivedPoints"]) == expected


# Every mutation, refused: the user error, an empty payload, and nothing posted ------------

Inputs = Callable[[World], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Op:
    """A mutation and how to build its input from the world's ids."""

    name: str
    label: str
    inputs: Inputs


def constant(**values: Any) -> Inputs:
    async def build_input(world: World) -> dict[str, Any]:
        return values

    return build_input


def member_ref(world: World, who: str) -> dict[str, str]:
    """Members X, Y and W by their id; anything else is a partner's customer id."""
    return {"id": world.ids[who]} if who in ("X", "Y", "W") else {"partnerCustomerId": who}


def enrol(partner: str, customer: str) -> Op:
    inputs = constant(partner=partner, partnerCustomerId=customer)
    return Op("enrolMember", f"enrolMember({partner},{customer})", inputs)


def points(name: str, partner: str, who: str) -> Op:
    async def build_input(world: World) -> dict[str, Any]:
        ref = member_ref(world, who)
        return {"partner": partner, "member": ref, "points": 5, "idempotencyKey": world.key()}

    return Op(name, f"{name}({partner},{who})", build_input)


def earn(partner: str, who: str) -> Op:
    return points("earnPoints", partner, who)


def redeem(partner: str, who: str) -> Op:
    return points("redeemPoints", partner, who)


def convert(who: str, source: str, target: str) -> Op:
    async def build_input(world: World) -> dict[str, Any]:
        return {
            "memberId": world.ids[who],
            "fromPartner": source,
            "toPartner": target,
            "points": 200 if source == "skyway" else 20,
            "idempotencyKey": world.key(),
        }

    return Op("convertPoints", f"convertPoints({who},{source}->{target})", build_input)


def reverse(label: str) -> Op:
    async def build_input(world: World) -> dict[str, Any]:
        return {"transferId": world.ids[label], "idempotencyKey": world.key()}

    return Op("reverseTransfer", f"reverseTransfer({label})", build_input)


START = Op("startAccountLink", "startAccountLink", constant())


async def some_id_token(world: World) -> dict[str, Any]:
    return {"idToken": world.brands.token("brewbar", "someone", nonce="n")}


async def y_nonce_in_x_token(world: World) -> dict[str, Any]:
    """X completes a link with an ID token carrying the nonce of a link Y started."""
    start = payload(await world.call("member-Y", START_LINK))
    assert start["nonce"]
    token = world.brands.token("brewbar", "x-bb", brewbar_card="BB-X", nonce=start["nonce"])
    return {"idToken": token}


COMPLETE = Op("completeAccountLink", "completeAccountLink", some_id_token)


async def y_bearer_token(world: World) -> dict[str, Any]:
    """Y's own sign-in token: it carries no nonce of a link X started."""
    return {"idToken": world.tokens["member-Y"]}


COMPLETE_WITH_Y_TOKEN = Op("completeAccountLink", "completeAccountLink(Y's token)", y_bearer_token)
COMPLETE_WITH_Y_NONCE = Op(
    "completeAccountLink", "completeAccountLink(Y's nonce)", y_nonce_in_x_token
)


def unlink(member: str, provider: str, note: str = "") -> Op:
    async def build_input(world: World) -> dict[str, Any]:
        identities = world.truth[member]["identities"]
        (identity,) = (i for i in identities if i["provider"] == provider)
        return {"identityId": identity["id"]}

    return Op("unlinkIdentity", f"unlinkIdentity({member}@{provider}{note})", build_input)


DENIED, UNKNOWN_MEMBER, UNKNOWN_TRANSFER = "ACCESS_DENIED", "UNKNOWN_MEMBER", "UNKNOWN_TRANSFER"
PARTNER_APPS = ("skyway-app", "brewbar-app", "skyway-earn-only")

# (role, operation, expected user error). A partner's app acting at another partner is
# denied; naming a member or transfer it may not see is "unknown" (nothing revealed).
REFUSALS: list[tuple[str, Op, str]] = [
    ("skyway-app", enrol("brewbar", "BB-NEW"), DENIED),
    ("brewbar-app", enrol("skyway", "SKY-NEW"), DENIED),
    ("skyway-earn-only", enrol("skyway", "SKY-NEW"), DENIED),  # no members:enrol
    ("member-X", enrol("skyway", "SKY-NEW"), DENIED),
    ("member-Y", enrol("brewbar", "BB-NEW"), DENIED),
    ("skyway-app", earn("brewbar", "X"), DENIED),
    ("skyway-app", earn("brewbar", "BB-Y"), DENIED),
    ("skyway-app", earn("skyway", "Y"), UNKNOWN_MEMBER),
    ("brewbar-app", earn("brewbar", "X"), UNKNOWN_MEMBER),  # X's brewbar wallet is not enough
    ("brewbar-app", earn("brewbar", "SKY-1"), UNKNOWN_MEMBER),
    ("brewbar-app", earn("skyway", "SKY-1"), DENIED),
    ("skyway-earn-only", earn("skyway", "X"), UNKNOWN_MEMBER),  # no members:read: by id, no
    ("skyway-earn-only", earn("brewbar", "BB-Y"), DENIED),
    ("member-X", earn("skyway", "X"), DENIED),
    ("member-Y", earn("brewbar", "BB-Y"), DENIED),
    ("skyway-app", redeem("brewbar", "X"), DENIED),
    ("skyway-app", redeem("skyway", "Y"), UNKNOWN_MEMBER),
    ("brewbar-app", redeem("brewbar", "X"), UNKNOWN_MEMBER),
    ("brewbar-app", redeem("skyway", "SKY-1"), DENIED),
    ("skyway-earn-only", redeem("skyway", "SKY-1"), DENIED),  # no points:redeem
    ("member-X", redeem("brewbar", "Y"), DENIED),
    ("member-X", redeem("brewbar", "BB-Y"), DENIED),
    # A customer id nobody holds is unknown to a member too (others' are denied).
    (
        "member-X",
        redeem("brewbar", "BB-NOBODY"),
        DENIED,
    ),  # not UNKNOWN_MEMBER: no probing of customer ids
    ("member-Y", redeem("skyway", "X"), DENIED),
    ("skyway-app", convert("X", "skyway", "brewbar"), DENIED),
    ("brewbar-app", convert("Y", "brewbar", "skyway"), DENIED),
    ("skyway-earn-only", convert("X", "skyway", "brewbar"), DENIED),
    ("member-X", convert("Y", "brewbar", "skyway"), DENIED),
    ("member-Y", convert("X", "skyway", "brewbar"), DENIED),
    ("skyway-app", reverse("X.T2"), UNKNOWN_TRANSFER),  # X's brewbar earn
    ("skyway-app", reverse("Y.T1"), UNKNOWN_TRANSFER),
    ("skyway-app", reverse("X.T4"), "TRANSFER_ALREADY_REVERSED"),  # its own: reached
    ("brewbar-app", reverse("X.T2"), UNKNOWN_TRANSFER),  # brewbar's pool, X not its member
    ("brewbar-app", reverse("X.C"), UNKNOWN_TRANSFER),
    ("brewbar-app", reverse("W.C"), DENIED),  # sees W's conversion out of skyway
    ("brewbar-app", reverse("W.T1"), UNKNOWN_TRANSFER),
    ("skyway-earn-only", reverse("X.T1"), UNKNOWN_TRANSFER),
    ("member-X", reverse("X.T1"), DENIED),
    ("member-Y", reverse("X.T1"), UNKNOWN_TRANSFER),
    *((role, START, DENIED) for role in ("operator", *PARTNER_APPS)),
    *((role, COMPLETE, DENIED) for role in ("operator", *PARTNER_APPS)),
    ("member-X", COMPLETE_WITH_Y_NONCE, "LINK_INVALID"),
    ("member-X", COMPLETE_WITH_Y_TOKEN, "LINK_INVALID"),  # no merging Y in without proof
    *(
        (role, unlink("X", "skyway"), DENIED)
        for role in ("operator", "skyway-app", "skyway-earn-only")
    ),
    ("brewbar-app", unlink("W", "brewbar"), DENIED),
    ("member-X", unlink("Y", "brewbar"), "UNKNOWN_IDENTITY"),
    ("member-X", unlink("W", "brewbar"), "UNKNOWN_IDENTITY"),
    ("member-Y", unlink("X", "skyway"), "UNKNOWN_IDENTITY"),
    ("member-X", unlink("X", "skyway", ",last"), "LAST_IDENTITY"),
    ("forged-operator", enrol("skyway", "SKY-NEW"), DENIED),
    ("forged-operator", earn("skyway", "X"), DENIED),
    ("forged-operator", redeem("skyway", "X"), DENIED),
    ("forged-operator", convert("X", "skyway", "brewbar"), DENIED),
    ("forged-operator", reverse("X.T1"), UNKNOWN_TRANSFER),
    ("forged-operator", unlink("X", "skyway"), "UNKNOWN_IDENTITY"),
]

DOCUMENTS = {
    "enrolMember": ENROL,
    "earnPoints": EARN,
    "redeemPoints": REDEEM,
    "convertPoints": CONVERT,
    "reverseTransfer": REVERSE,
    "completeAccountLink": COMPLETE_LINK,
    "unlinkIdentity": UNLINK,
}


@pytest.mark.parametrize(
    ("role", "op", "code"), REFUSALS, ids=[f"{r}:{op.label}->{c}" for r, op, c in REFUSALS]
)
async def test_refused(world: World, role: str, op: Op, code: str):
    variables = await op.inputs(world)
    before = await world.snapshot()
    if op.name == "startAccountLink":
        result = payload(await world.call(role, START_LINK))
    else:
        result = payload(await world.call(role, DOCUMENTS[op.name], {"input": variables}))
    assert codes(result) == [code], result
    for key, value in result.items():
        if key != "userErrors":
            assert value in (None, [], False), (key, value)
    after = await world.snapshot()
    assert after == before
    assert {k: after[k] for k in "xyw"} == {k: world.initial[k] for k in "xyw"}
    if op.name == "enrolMember":
        check = {"partner": variables["partner"], "customer": variables["partnerCustomerId"]}
        assert (await world.call("operator", BY_ENROLMENT, check))["data"]["found"] is None


# What each role may do, on a member of its own (the shared coalition stays as built) ------

Allowed = Callable[[World], Awaitable[None]]
ALLOWED: list[tuple[str, str, Allowed]] = []


def allowed(role: str, operation: str) -> Callable[[Allowed], Allowed]:
    def register(case: Allowed) -> Allowed:
        ALLOWED.append((role, operation, case))
        return case

    return register


def posting(world: World, partner: str, member: dict[str, str], points: int) -> dict[str, Any]:
    """The input of an earn or a redeem, with a fresh idempotency key."""
    return {"partner": partner, "member": member, "points": points, "idempotencyKey": world.key()}


def wallet(result: dict[str, Any]) -> int:
    balance: int = result["wallet"]["balance"]
    return balance


def leg_pools(result: dict[str, Any], key: str = "transfer") -> set[str]:
    return pools(result[key])


@allowed("operator", "enrolMember(freshmart)")
async def operator_enrols(world: World) -> None:
    customer = f"FM-{world.key()}"
    result = await world.ok(
        "operator", ENROL, {"partner": "freshmart", "partnerCustomerId": customer}
    )
    assert result["created"] is True


@allowed("operator", "earnPoints(brewbar,by id)")
async def operator_earns_anywhere(world: World) -> None:
    f = await world.fresh()
    input = posting(world, "brewbar", {"id": f.id}, 25)
    result = await world.ok("operator", EARN, input)
    assert wallet(result) == 75 and leg_pools(result) == {"brewbar"}


@allowed("operator", "redeemPoints(skyway,by id)")
async def operator_redeems(world: World) -> None:
    f = await world.fresh()
    input = posting(world, "skyway", {"id": f.id}, 100)
    assert wallet(await world.ok("operator", REDEEM, input)) == 900


@allowed("operator", "convertPoints(skyway->brewbar)")
async def operator_converts(world: World) -> None:
    f = await world.fresh()
    transfer = await world.convert(f.id, "skyway", "brewbar", 200)
    view = await world.member_view(f.id)
    assert (view["skyway"], view["brewbar"]) == ({"balance": 800}, {"balance": 99})
    assert transfer_ids(view)[0] == transfer


@allowed("operator", "reverseTransfer(brewbar earn)")
async def operator_reverses(world: World) -> None:
    f = await world.fresh()
    await world.reverse(f.bb_earn)
    assert (await world.member_view(f.id))["brewbar"] == {"balance": 0}


@allowed("skyway-app", "enrolMember(skyway)")
async def skyway_enrols(world: World) -> None:
    customer = f"SKY-{world.key()}"
    result = await world.ok(
        "skyway-app", ENROL, {"partner": "skyway", "partnerCustomerId": customer}
    )
    assert result["created"] is True


@allowed("skyway-app", "enrolMember(skyway,SKY-1 again)")
async def skyway_enrols_again(world: World) -> None:
    result = await world.ok(
        "skyway-app", ENROL, {"partner": "skyway", "partnerCustomerId": "SKY-1"}
    )
    assert result["created"] is False and result["member"] == {"id": world.ids["X"]}


@allowed("skyway-app", "earnPoints(skyway,by id)")
async def skyway_earns_by_id(world: World) -> None:
    f = await world.fresh()
    input = posting(world, "skyway", {"id": f.id}, 100)
    result = await world.ok("skyway-app", EARN, input)
    assert wallet(result) == 1100 and leg_pools(result) == {"skyway"}


@allowed("skyway-app", "earnPoints(skyway,by customer)")
async def skyway_earns_by_customer(world: World) -> None:
    f = await world.fresh()
    member = {"partnerCustomerId": f.customer}
    input = posting(world, "skyway", member, 100)
    assert wallet(await world.ok("skyway-app", EARN, input)) == 1100


@allowed("skyway-app", "redeemPoints(skyway,by customer)")
async def skyway_redeems(world: World) -> None:
    f = await world.fresh()
    member = {"partnerCustomerId": f.customer}
    input = posting(world, "skyway", member, 100)
    result = await world.ok("skyway-app", REDEEM, input)
    assert wallet(result) == 900 and leg_pools(result) == {"skyway"}


@allowed("skyway-app", "reverseTransfer(skyway earn)")
async def skyway_reverses_its_earn(world: World) -> None:
    f = await world.fresh()
    result = await world.ok(
        "skyway-app", REVERSE, {"transferId": f.sky_earn, "idempotencyKey": world.key()}
    )
    assert leg_pools(result, "reversal") == {"skyway"}
    assert result["reversal"]["reverses"] == {"id": f.sky_earn}
    view = await world.member_view(f.id)
    assert (view["skyway"], view["brewbar"]) == ({"balance": 0}, {"balance": 50})


@allowed("skyway-earn-only", "earnPoints(skyway,by customer)")
async def earn_only_earns(world: World) -> None:
    f = await world.fresh()
    member = {"partnerCustomerId": f.customer}
    input = posting(world, "skyway", member, 100)
    assert wallet(await world.ok("skyway-earn-only", EARN, input)) == 1100


@allowed("member", "redeemPoints(own,by id)")
async def member_redeems_own(world: World) -> None:
    f = await world.fresh()
    input = posting(world, "skyway", {"id": f.id}, 100)
    assert wallet(await world.ok("", REDEEM, input, token=f.token)) == 900


@allowed("member", "redeemPoints(own,by customer)")
async def member_redeems_own_by_customer(world: World) -> None:
    f = await world.fresh()
    member = {"partnerCustomerId": f.customer}
    input = posting(world, "skyway", member, 100)
    assert wallet(await world.ok("", REDEEM, input, token=f.token)) == 900


@allowed("member", "convertPoints(own,skyway->brewbar)")
async def member_converts_own(world: World) -> None:
    f = await world.fresh()
    input = {
        "memberId": f.id,
        "fromPartner": "skyway",
        "toPartner": "brewbar",
        "points": 200,
        "idempotencyKey": world.key(),
    }
    result = await world.ok("", CONVERT, input, token=f.token)
    assert (result["fromWallet"]["balance"], result["toWallet"]["balance"]) == (800, 99)


@allowed("member", "startAccountLink+completeAccountLink+unlinkIdentity")
async def member_links_and_unlinks(world: World) -> None:
    f = await world.fresh()
    linked = await world.link(f.token, "freshmart", f"{f.id}-fm")
    assert linked["userErrors"] == [] and linked["member"] == {"id": f.id}
    assert linked["mergedMemberIds"] == [] and linked["alreadyLinked"] is False
    (identity,) = (
        i for i in (await world.member_view(f.id))["identities"] if i["provider"] == "freshmart"
    )
    result = await world.ok("", UNLINK, {"identityId": identity["id"]}, token=f.token)
    assert result["member"]["identities"] == [{"provider": "skyway", "subject": f.subject}]


@pytest.mark.parametrize(
    ("role", "operation", "case"), ALLOWED, ids=[f"{r}:{op}->ok" for r, op, _ in ALLOWED]
)
async def test_allowed(world: World, role: str, operation: str, case: Allowed):
    await case(world)
    assert {k: v for k, v in (await world.snapshot()).items() if k in "xyw"} == {
        k: world.initial[k] for k in "xyw"
    }


# Enrolling at brewbar is what lets brewbar's app see a member -----------------------------


async def test_brewbar_app_sees_a_member_once_enrolled_or_signed_in_there(world: World) -> None:
    f = await world.fresh()  # enrolled at skyway, with a brewbar wallet from an earn by id
    by_id = {"id": f.id}

    async def brewbar_sees() -> Any:
        return (await world.call("brewbar-app", BY_ID, by_id))["data"]["found"]

    async def brewbar_earns() -> list[str]:
        input = posting(world, "brewbar", by_id, 5)
        return codes(await world.mutate("brewbar-app", EARN, input))

    assert await brewbar_sees() is None
    assert await brewbar_earns() == ["UNKNOWN_MEMBER"]

    # Linking a brewbar sign-in whose token carries the card enrols the member there too.
    linked = await world.link(f.token, "brewbar", f"{f.id}-bb", brewbar_card=f"BB-{f.id}")
    assert linked["userErrors"] == [] and linked["member"] == {"id": f.id}
    full = await world.member_view(f.id)
    seen = await brewbar_sees()
    assert seen == seen_by(full, "brewbar")
    assert seen["enrolments"] == [
        {"partner": {"slug": "brewbar"}, "partnerCustomerId": f"BB-{f.id}"}
    ]
    assert seen["wallets"] == [{"partner": {"slug": "brewbar"}, "balance": 50}]
    assert transfer_ids(seen) == [f.bb_earn] and seen["identities"] == []
    assert await brewbar_earns() == []

    # Unlinking the sign-in keeps the enrolment: still brewbar's customer.
    (identity,) = (i for i in full["identities"] if i["provider"] == "brewbar")
    await world.ok("", UNLINK, {"identityId": identity["id"]}, token=f.token)
    assert (await brewbar_sees())["enrolments"] == seen["enrolments"]


async def test_a_sign_in_alone_lets_the_partner_see_the_member_until_unlinked(world: World):
    f = await world.fresh()
    by_id = {"id": f.id}
    assert (await world.call("brewbar-app", BY_ID, by_id))["data"]["found"] is None
    linked = await world.link(f.token, "brewbar", f"{f.id}-bb")  # no card claim: no enrolment
    assert linked["userErrors"] == []
    seen = (await world.call("brewbar-app", BY_ID, by_id))["data"]["found"]
    assert seen is not None and seen["enrolments"] == [] and seen["identities"] == []
    full = await world.member_view(f.id)
    (identity,) = (i for i in full["identities"] if i["provider"] == "brewbar")
    await world.ok("", UNLINK, {"identityId": identity["id"]}, token=f.token)
    assert (await world.call("brewbar-app", BY_ID, by_id))["data"]["found"] is None


async def test_after_a_merge_each_app_still_sees_only_its_pool(world: World) -> None:
    """F (skyway) links G's brewbar sign-in: G is merged into F. The retired member's
    transfers and the merge's own transfer are reached through F, each app its pool's."""
    n = next(world.counter)
    g_card, g_subject = f"BB-G{n}", f"g{n}-sub"
    g = await world.enrol("brewbar", g_card)
    g_earn = await world.earn("brewbar", {"partnerCustomerId": g_card}, 30)
    g_token = world.brands.token("brewbar", g_subject, brewbar_card=g_card)
    assert await world.signed_in(g_token) == g
    f = await world.fresh()
    linked = await world.link(f.token, "brewbar", g_subject, brewbar_card=g_card)
    assert linked["userErrors"] == [] and linked["mergedMemberIds"] == [g]
    full = await world.member_view(f.id)
    merge = transfer_ids(full)[0]
    assert (full["skyway"], full["brewbar"]) == ({"balance": 1000}, {"balance": 80})

    skyway = (await world.call("skyway-app", BY_ID, {"id": f.id}))["data"]["found"]
    assert skyway == seen_by(full, "skyway") and transfer_ids(skyway) == [f.sky_earn]
    brewbar = (await world.call("brewbar-app", BY_ID, {"id": f.id}))["data"]["found"]
    assert brewbar == seen_by(full, "brewbar")
    assert transfer_ids(brewbar) == [merge, f.bb_earn, g_earn]
    assert {e["node"]["member"]["id"] for e in brewbar["transfers"]["edges"]} == {f.id}

    # G's transfer is brewbar's only; G's id names the survivor, cut to each app's pool.
    assert (await world.call("skyway-app", TRANSFER_NODE, {"id": g_earn}))["data"]["found"] is None
    by_old_id = (await world.call("skyway-app", BY_NODE, {"id": g}))["data"]["found"]
    assert by_old_id == skyway
    # The two sign-ins are one person now: G's token reaches F, not someone else.
    assert (await world.gateway.gql(ME, token=g_token))["data"]["me"] == {"id": f.id}


# Found by this matrix, fixed since: kept as regressions


async def test_a_partner_app_cannot_reverse_a_conversion_into_another_pool(world: World):
    f = await world.fresh()
    conversion = await world.convert(f.id, "skyway", "brewbar", 200)
    before = await world.member_view(f.id)
    input = {"transferId": conversion, "idempotencyKey": world.key()}
    result = await world.mutate("skyway-app", REVERSE, input)
    after = await world.member_view(f.id)
    assert (after["skyway"], after["brewbar"]) == (before["skyway"], before["brewbar"])
    assert codes(result) == ["ACCESS_DENIED"]


async def test_earning_without_members_read_does_not_reveal_the_member(world: World):
    f = await world.fresh()
    member = {"partnerCustomerId": f.customer}
    input = posting(world, "skyway", member, 10)
    result = await world.mutate("skyway-earn-only", EARN_DEEP, input)
    assert result["userErrors"] == [] and result["wallet"] == {"balance": 1010}
    assert result["transfer"]["member"] is None, result["transfer"]["member"]


async def test_enrolling_without_members_read_does_not_reveal_the_member(world: World):
    token = await world.gateway.partner_token("skyway", "members:enrol")
    body = await world.gateway.gql(
        ENROL_DEEP, {"input": {"partner": "skyway", "partnerCustomerId": "SKY-1"}}, token=token
    )
    result = payload(body)
    assert result["userErrors"] == [] and result["created"] is False
    member = result["member"]
    assert member is None or (member["wallets"] == [] and member["transfers"]["edges"] == [])


# No credentials: 401 for every operation ----------------------------------------------------

ANONYMOUS: list[tuple[str, str, Callable[[World], dict[str, Any]]]] = [
    ("node", "query($id: ID!) { node(id: $id) { id } }", lambda w: {"id": w.ids["X"]}),
    ("partners", "{ partners { slug } }", lambda w: {}),
    ("partner", '{ partner(slug: "skyway") { slug figures { pointsIssued } } }', lambda w: {}),
    ("me", ME, lambda w: {}),
    ("member", BY_ID, lambda w: {"id": w.ids["X"]}),
    ("memberByEnrolment", BY_ENROLMENT, lambda w: {"partner": "skyway", "customer": "SKY-1"}),
    (
        "quoteConversion",
        QUOTE,
        lambda w: {
            "input": {
                "memberId": w.ids["X"],
                "fromPartner": "skyway",
                "toPartner": "brewbar",
                "points": 200,
            }
        },
    ),
    (
        "enrolMember",
        ENROL,
        lambda w: {"input": {"partner": "skyway", "partnerCustomerId": "SKY-ANON"}},
    ),
    (
        "earnPoints",
        EARN,
        lambda w: {
            "input": {
                "partner": "skyway",
                "member": {"id": w.ids["X"]},
                "points": 5,
                "idempotencyKey": "anon",
            }
        },
    ),
    (
        "redeemPoints",
        REDEEM,
        lambda w: {
            "input": {
                "partner": "skyway",
                "member": {"id": w.ids["X"]},
                "points": 5,
                "idempotencyKey": "anon",
            }
        },
    ),
    (
        "convertPoints",
        CONVERT,
        lambda w: {
            "input": {
                "memberId": w.ids["X"],
                "fromPartner": "skyway",
                "toPartner": "brewbar",
                "points": 200,
                "idempotencyKey": "anon",
            }
        },
    ),
    (
        "reverseTransfer",
        REVERSE,
        lambda w: {"input": {"transferId": w.ids["X.T1"], "idempotencyKey": "anon"}},
    ),
    ("startAccountLink", START_LINK, lambda w: {}),
    ("completeAccountLink", COMPLETE_LINK, lambda w: {"input": {"idToken": "x"}}),
    ("unlinkIdentity", UNLINK, lambda w: {"input": {"identityId": "x"}}),
]


@pytest.mark.parametrize(
    ("operation", "document", "variables"), ANONYMOUS, ids=[r[0] for r in ANONYMOUS]
)
async def test_no_credentials(
    world: World, operation: str, document: str, variables: Callable[[World], dict[str, Any]]
):
    before = await world.snapshot()
    response = await world.gateway.client.post(
        "/graphql",
        json={"query": document, "variables": variables(world)},
        headers={"accept": "application/graphql-response+json"},
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer realm="coalition"'
    body = response.json()
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert await world.snapshot() == before


async def test_after_everything_x_y_and_w_are_as_built(world: World) -> None:
    after = await world.snapshot()
    assert {k: after[k] for k in "xyw"} == {k: world.initial[k] for k in "xyw"}
