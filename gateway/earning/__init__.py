"""Earning: the rule-by-rule breakdown, promotions, purchases, pending points, returns,
activities, referrals and batches."""
