"""What every layer uses: typed errors, input checks, the database, the unit of work."""
