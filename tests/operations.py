"""GraphQL documents the tests send, and small helpers around them."""

from __future__ import annotations

from typing import Any

TRANSFER_FIELDS = """
  id kind points receivedPoints purchaseAmount rate fee reason idempotencyKey createdAt
  partner { slug } toPartner { slug } member { id }
  reverses { id } reversedBy { id }
  legs { partner { slug } account amount balanceAfter }
"""
ERRORS = "userErrors { code field message }"

ENROL = f"""
mutation($input: EnrolMemberInput!) {{
  enrolMember(input: $input) {{ member {{ id }} created {ERRORS} }}
}}"""

EARN = f"""
mutation($input: EarnPointsInput!) {{
  earnPoints(input: $input) {{
    transfer {{ {TRANSFER_FIELDS} }}
    wallet {{ balance partner {{ slug }} value {{ amount currency }} }}
    idempotentReplay {ERRORS}
  }}
}}"""

REDEEM = f"""
mutation($input: RedeemPointsInput!) {{
  redeemPoints(input: $input) {{
    transfer {{ {TRANSFER_FIELDS} }} wallet {{ balance }} idempotentReplay {ERRORS}
  }}
}}"""

CONVERT = f"""
mutation($input: ConvertPointsInput!) {{
  convertPoints(input: $input) {{
    transfer {{ {TRANSFER_FIELDS} }}
    fromWallet {{ balance partner {{ slug }} }} toWallet {{ balance partner {{ slug }} }}
    idempotentReplay {ERRORS}
  }}
}}"""

QUOTE = f"""
query($input: QuoteConversionInput!) {{
  quoteConversion(input: $input) {{
    quote {{
      fromPartner {{ slug }} toPartner {{ slug }} points fee rate receivedPoints
      sourceBalance sufficientBalance quotedAt
      valueGiven {{ amount currency }} valueReceived {{ amount currency }}
      rule {{ rate feePercent feeFixed minPoints maxPoints effectiveFrom }}
    }}
    {ERRORS}
  }}
}}"""

REVERSE = f"""
mutation($input: ReverseTransferInput!) {{
  reverseTransfer(input: $input) {{ reversal {{ {TRANSFER_FIELDS} }} idempotentReplay {ERRORS} }}
}}"""

MEMBER = """
query($id: ID!, $first: Int, $after: String, $partner: String) {
  member(id: $id) {
    id
    enrolments { partner { slug } partnerCustomerId }
    wallets { partner { slug } balance value { amount currency } }
    totalValue { amount currency }
    transfers(first: $first, after: $after, partner: $partner) {
      edges { cursor node { id kind points partner { slug } toPartner { slug } } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}"""


def payload(body: dict[str, Any]) -> dict[str, Any]:
    """The single root field's value of a response."""
    (value,) = body["data"].values()
    assert isinstance(value, dict)
    return value


def codes(result: dict[str, Any]) -> list[str]:
    return [error["code"] for error in result["userErrors"]]
