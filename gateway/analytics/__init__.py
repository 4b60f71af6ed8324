"""Analytics: daily aggregates of the event log (earn and burn, liability, breakage, active
members, cross-brand flows), kept by an event consumer and read per day, week or month."""
