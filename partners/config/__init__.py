"""The coalition's configuration: partners, their rule types and the TOML readers."""
