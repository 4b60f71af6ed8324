"""The partner side: partner configuration and point pools."""
