"""The coalition's configuration (partners, conversion rules, earning rules) kept in the
database: versioned, with effective dates and who changed it, applied by every process."""
