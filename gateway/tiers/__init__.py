"""Coalition-wide tiers: the rules, the stored state and the review job."""
