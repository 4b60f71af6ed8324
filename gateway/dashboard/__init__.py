"""What a member's dashboard ranks by."""
