"""Environment construction: vector envs for main.py (flat observations) and main_atari.py (ALE games)."""
