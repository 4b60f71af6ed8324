"""Authentication (who is calling) and the policy of what each caller may reach."""
