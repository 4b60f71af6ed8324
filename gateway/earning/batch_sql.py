"""The statements of a batch of earns (``earning.batch``), PostgreSQL text built once.

Arrays are joined through ``unnest`` rather than tested with ``= ANY(array)``: a cached
generic plan may scan the table testing every row against every element.
"""

from __future__ import annotations

import sqlalchemy as sa

RESOLVE = sa.text(
    """
SELECT e.customer_id, e.member_id
FROM unnest(CAST(:customers AS VARCHAR[])) AS c(customer_id)
JOIN enrolments e ON e.partner = :partner AND e.customer_id = c.customer_id
"""
)
# The member's own purchases and those of members merged into them. (LATERAL ... LIMIT 1
# rather than EXISTS, here and below: PostgreSQL may run an EXISTS as one pass over every
# purchase at the partner, a hashed subplan, rather than one probe per member.)
HISTORY = sa.text(
    """
WITH ids AS (
    SELECT w.member_id AS live, w.member_id AS id
    FROM unnest(CAST(:members AS VARCHAR[])) AS w(member_id)
    UNION ALL
    SELECT m.merged_into, m.id
    FROM unnest(CAST(:members AS VARCHAR[])) AS w(member_id)
    JOIN members m ON m.merged_into = w.member_id
)
SELECT ids.live, bool_or(bought.found IS NOT NULL),
  SUM(CASE WHEN :count THEN (SELECT COUNT(*) FROM purchases p WHERE p.member_id = ids.id
            AND p.partner = :partner AND p.created_at >= CAST(:since AS TIMESTAMPTZ)) END)
FROM ids
LEFT JOIN LATERAL (SELECT 1 AS found FROM purchases p WHERE p.member_id = ids.id
                   AND p.partner = :partner LIMIT 1) AS bought ON true
GROUP BY ids.live
"""
)
# (Points pending: the partial index ix_purchases_member_pending, with the literal status.)
WALLETS = sa.text(
    """
SELECT w.member_id,
  (SELECT balance FROM accounts a WHERE a.member_id = w.member_id AND a.pool = :partner),
  (SELECT SUM(p.points - p.clawed_back) FROM purchases p
   WHERE p.member_id = w.member_id AND p.partner = :partner AND p.status = 'pending'),
  (SELECT SUM(h.points) FROM holds h
   WHERE h.member_id = w.member_id AND h.partner = :partner AND h.status = 'authorized'),
  (SELECT owed FROM wallet_debts d WHERE d.member_id = w.member_id AND d.pool = :partner),
  referred.due IS NOT NULL
FROM unnest(CAST(:members AS VARCHAR[])) AS w(member_id)
LEFT JOIN LATERAL (SELECT 1 AS due FROM referrals r WHERE r.referred_id = w.member_id
                   AND r.rewarded_at IS NULL LIMIT 1) AS referred ON true
"""
)
PURCHASES = sa.text(
    """
INSERT INTO purchases (transfer_id, member_id, partner, receipt, amount, points, breakdown,
                       wallet, status, matures_at, returned_amount, clawed_back, uncollected,
                       created_at)
SELECT p.*, '0', 0, 0, CAST(:at AS TIMESTAMPTZ)
FROM unnest(CAST(:transfers AS BIGINT[]), CAST(:members AS VARCHAR[]),
            CAST(:partners AS VARCHAR[]), CAST(:receipts AS VARCHAR[]),
            CAST(:amounts AS VARCHAR[]), CAST(:points AS BIGINT[]),
            CAST(:breakdowns AS VARCHAR[]), CAST(:wallets AS VARCHAR[]),
            CAST(:statuses AS VARCHAR[]), CAST(:matures AS TIMESTAMPTZ[])) AS p
"""
)
REPLAYED = sa.text(
    """
SELECT transfer_id, breakdown, wallet, matures_at FROM purchases
WHERE transfer_id = ANY(CAST(:transfers AS BIGINT[]))
"""
)
