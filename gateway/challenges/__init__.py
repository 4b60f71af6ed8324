"""Challenges and badges: progress, awards and their bonuses."""
